"""What `memlab reproduce` works with: the sweep files of a checkout's `examples/` folder,
the key that lets a second start resume the same sweep, and the record it leaves behind.

A reproduction is a sweep file, `examples/NAME.sweep.json` (its reduced version
`NAME.quick.sweep.json`, its GPU-sized one `NAME.gpu.sweep.json`), submitted as it is. The
file's claims say what the sweep sets out to show; the server holds each against the
seeds' intervals, and the verdicts are what the command reports.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

SUFFIX = ".sweep.json"
# NAME.quick.sweep.json, NAME.gpu.sweep.json, NAME.paper.sweep.json (the paper's sizes)
FILE_VARIANTS = (".quick", ".gpu", ".paper")


class ReproduceError(Exception):
    """A sweep file that cannot be found or read, said so that a person can act on it."""


@dataclass(frozen=True)
class SweepFile:
    """One reproduction: its name (the file's stem), path, request and content digest."""

    name: str
    path: Path
    request: dict[str, Any]
    sha256: str

    @property
    def idempotency_key(self) -> str:
        """The same file gives the same key, so starting it again follows the sweep the
        first start made (resuming it) instead of submitting a second one; an edited file
        is a new sweep."""
        return f"reproduce:{self.name}:{self.sha256[:24]}"


def find_sweep_files(
    examples: Path, names: list[str], *, every: bool, variant: str = ""
) -> list[SweepFile]:
    """The files named (`NAME{variant}.sweep.json`), or with `every` all files of that
    variant in `examples`, sorted by name."""
    if not examples.is_dir():
        raise ReproduceError(
            f"no folder {examples}: run from a memlab checkout (it has examples/) or pass "
            "--examples DIR"
        )
    if every == bool(names):
        raise ReproduceError("name one or more reproductions, or give --all (not both)")
    if every:
        paths = _files(examples, variant)
        if not paths:
            raise ReproduceError(f"no *{variant}{SUFFIX} files in {examples}")
    else:
        paths = [examples / f"{name}{variant}{SUFFIX}" for name in names]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            known = ", ".join(available(examples, variant)) or "none"
            raise ReproduceError(f"no file {missing[0]} (reproductions here: {known})")
    return [read_sweep_file(path) for path in paths]


def available(examples: Path, variant: str = "") -> list[str]:
    """The reproductions `examples` holds in that variant, by name."""
    return sorted(_name(p) for p in _files(examples, variant))


def _files(examples: Path, variant: str) -> list[Path]:
    return sorted(p for p in examples.glob(f"*{variant}{SUFFIX}") if _variant(p) == variant)


def read_sweep_file(path: Path) -> SweepFile:
    text = path.read_bytes()
    try:
        request = json.loads(text)
    except json.JSONDecodeError as error:
        raise ReproduceError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(request, dict) or "base" not in request:
        raise ReproduceError(f"{path} is not a sweep request (an object with a `base`)")
    return SweepFile(_name(path), path, request, hashlib.sha256(text).hexdigest())


def _name(path: Path) -> str:
    stem = path.name.removesuffix(SUFFIX)
    variant = _variant(path)
    return stem.removesuffix(variant) if variant else stem


def _variant(path: Path) -> str:
    stem = path.name.removesuffix(SUFFIX)
    return next((v for v in FILE_VARIANTS if stem.endswith(v)), "")


def effect(verdicts: list[dict[str, Any]]) -> str:
    """The sweep's claims in a phrase: `shown` when every claim is, `partly shown (k of
    n)`, `not shown`, `undecided` when no claim could be tested (too few seeds, no data),
    or `no claims`."""
    if not verdicts:
        return "no claims"
    shown = sum(v["verdict"] == "shown" for v in verdicts)
    if shown == len(verdicts):
        return "shown"
    if shown:
        return f"partly shown ({shown} of {len(verdicts)})"
    tested = any(v["verdict"] in ("not shown", "reversed") for v in verdicts)
    return "not shown" if tested else "undecided"


def table_values(request: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """The result paths to print: the ones the claims name (in order), else the final
    evaluation's and the probes'."""
    named: list[str] = []
    for claim in request.get("claims", []):
        than = claim.get("than")
        for path in (claim.get("value"), than.get("value") if isinstance(than, dict) else None):
            if path and path not in named:
                named.append(path)
    return named or default_values(sorted({path for row in rows for path in row["values"]}))


def default_values(paths: list[str], at_most: int = 6) -> list[str]:
    """Which of a table's value paths to show unasked: the final evaluation's and the
    probes', else the first ones."""
    return ([p for p in paths if p.startswith(("final.", "probe."))] or paths)[:at_most]


def training_minutes(sweep_id: str, children: list[dict[str, Any]]) -> float | None:
    """Wall time from the first start to the last end of the children this sweep trained
    (children reused from an earlier sweep left out; a server restart in between counts
    as time); None when it reused them all."""
    spans = [
        (datetime.fromisoformat(c["started_at"]), datetime.fromisoformat(c["finished_at"]))
        for c in children
        if c.get("sweep_id") == sweep_id and c.get("started_at") and c.get("finished_at")
    ]
    if not spans:
        return None
    started = min(start for start, _ in spans)
    ended = max(end for _, end in spans)
    return (ended - started).total_seconds() / 60


def record(
    file: SweepFile,
    sweep: dict[str, Any],
    table: dict[str, Any],
    children: list[dict[str, Any]],
) -> dict[str, Any]:
    """What a finished reproduction leaves beside its CSV: which file and sweep made it,
    how long its training took, how many children it reused, and each claim's verdict."""
    return {
        "name": file.name,
        "file": file.path.as_posix(),
        "file_sha256": file.sha256,
        "sweep_id": sweep["id"],
        "status": sweep["status"],
        "counts": sweep["counts"],
        # A server older than probe_counts reports none.
        "failed_probes": sum(
            n for status, n in sweep.get("probe_counts", {}).items() if status != "succeeded"
        ),
        "reused_children": sum(c.get("sweep_id") != sweep["id"] for c in children),
        "minutes": round(m, 1)
        if (m := training_minutes(sweep["id"], children)) is not None
        else None,
        "effect": effect(table.get("claims", [])),
        "claims": table.get("claims", []),
    }
