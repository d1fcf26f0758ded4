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
VARIANTS = (".quick", ".gpu")  # NAME.quick.sweep.json, NAME.gpu.sweep.json


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
        paths = sorted(p for p in examples.glob(f"*{variant}{SUFFIX}") if _variant(p) == variant)
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
    return sorted(_name(p) for p in examples.glob(f"*{variant}{SUFFIX}") if _variant(p) == variant)


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
    return next((v for v in VARIANTS if stem.endswith(v)), "")


def effect(verdicts: list[dict[str, Any]]) -> str:
    """One word for the sweep's claims together: `shown` when every claim is, `partly
    shown (k of n)`, `not shown`, or `no claims`."""
    if not verdicts:
        return "no claims"
    shown = sum(v["verdict"] == "shown" for v in verdicts)
    if shown == len(verdicts):
        return "shown"
    return f"partly shown ({shown} of {len(verdicts)})" if shown else "not shown"


def table_values(request: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """The result paths to print: the ones the claims name (in order), else the final
    evaluation's and the probes'."""
    named: list[str] = []
    for claim in request.get("claims", []):
        than = claim.get("than")
        for path in (claim.get("value"), than.get("value") if isinstance(than, dict) else None):
            if path and path not in named:
                named.append(path)
    if named:
        return named
    paths = sorted({path for row in rows for path in row["values"]})
    return [p for p in paths if p.startswith(("final.", "probe."))][:6] or paths[:6]


def training_minutes(children: list[dict[str, Any]]) -> float | None:
    """Wall time from the first child's start to the last one's end: what the sweep's
    training took, whether its children ran for it or were reused from an earlier sweep
    (a server restart in between counts as time)."""
    spans = [
        (datetime.fromisoformat(c["started_at"]), datetime.fromisoformat(c["finished_at"]))
        for c in children
        if c.get("started_at") and c.get("finished_at")
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
        "reused_children": sum(c.get("sweep_id") != sweep["id"] for c in children),
        "minutes": round(m, 1) if (m := training_minutes(children)) is not None else None,
        "effect": effect(table.get("claims", [])),
        "claims": table.get("claims", []),
    }
