"""`memlab reproduce`: a sweep file from examples/ run through the real API and a worker,
its table written to OUT/NAME.csv beside a record of the verdicts; a second start follows
the same sweep instead of submitting another."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from memlab_client.report import only, varying_keys
from memlab_client.reproduce import ReproduceError, effect, find_sweep_files
from memlab_client.sdk import MemlabClient
from tests.client.conftest import ThreadWorker

RunCli = Callable[..., Result]

# Facts at two widths, a handful of steps: the claim's verdict is whatever these seeds say;
# the test checks that it is computed and recorded, not which way it goes.
TINY = {
    "name": "tiny",
    "base": {
        "kind": "capacity_tradeoff",
        "task": "facts",
        "n_facts": 8,
        "train": {"steps": 4, "batch_size": 8, "eval_every": 4, "checkpoint_every": 4},
        "probes": [{"kind": "exact_recall"}],
    },
    "axes": {"model.n_embd": [8, 16]},
    "seeds": 3,
    "claims": [
        {
            "test": "greater",
            "statement": "wider recalls more",
            "value": "final.facts",
            "cell": {"model.n_embd": 16},
            "than": {"cell": {"model.n_embd": 8}},
        }
    ],
}


def plain(output: str) -> str:
    """CLI output with the error box's borders and line breaks taken out."""
    return " ".join(output.replace("│", " ").split())


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    folder = tmp_path / "examples"
    folder.mkdir()
    (folder / "tiny.sweep.json").write_text(json.dumps(TINY))
    (folder / "tiny.quick.sweep.json").write_text(json.dumps({**TINY, "axes": {}, "claims": []}))
    (folder / "tiny.gpu.sweep.json").write_text(json.dumps(TINY))
    (folder / "tiny.paper.sweep.json").write_text(json.dumps(TINY))
    return folder


def test_reproduce_runs_the_file_and_writes_its_table_and_verdicts(
    worker: ThreadWorker, run_cli: RunCli, sdk: MemlabClient, examples: Path, tmp_path: Path
) -> None:
    out = tmp_path / "data"
    args = ("reproduce", "tiny", "--examples", str(examples), "--out", str(out))
    first = run_cli(*args)
    assert first.exit_code == 0, first.output
    assert "wider recalls more" in first.output and "paired difference over 3 seeds" in first.output
    with (out / "tiny.csv").open() as table:
        rows = list(csv.DictReader(table))
    assert [row["model.n_embd"] for row in rows] == ["8", "16"]
    assert all(row["n_succeeded"] == "3" and row["final.facts.n"] == "3" for row in rows)
    # The probes run after their experiments; the sweep ended only once they had.
    assert all(row["probe.exact_recall.accuracy.n"] == "3" for row in rows)
    record = json.loads((out / "tiny.json").read_text())
    assert record["status"] == "succeeded" and record["counts"]["succeeded"] == 6
    assert record["file"].endswith("examples/tiny.sweep.json") and len(record["file_sha256"]) == 64
    (verdict,) = record["claims"]
    assert verdict["statement"] == "wider recalls more" and verdict["n"] == 3
    assert record["effect"] == effect([verdict])
    assert record["reused_children"] == 0 and record["minutes"] >= 0  # was negative once
    assert record["failed_probes"] == 0

    # The same, as Markdown from the files alone (what docs/reproductions.md quotes).
    markdown = run_cli("report", "tiny", "--data", str(out), "--examples", str(examples))
    assert markdown.exit_code == 0, markdown.output
    lines = markdown.output.splitlines()
    assert lines[0] == "| model.n_embd | seeds | final.facts |"
    assert lines[2].startswith("| 8 | 3 | ") and " ± " in lines[2]
    assert f"| wider recalls more | **{verdict['verdict']}** |" in markdown.output
    assert record["sweep_id"] in lines[-1]

    # Started again: the same sweep is followed, nothing new is submitted.
    again = run_cli(*args)
    assert again.exit_code == 0, again.output
    assert f"sweep {record['sweep_id']}" in again.output and "6 already ended" in again.output
    assert sdk.list_sweeps()["total"] == 1 and sdk.list()["total"] == 6


def test_reproduce_all_quick_prints_one_line_per_reproduction(
    worker: ThreadWorker, run_cli: RunCli, examples: Path, tmp_path: Path
) -> None:
    (examples / "other.quick.sweep.json").write_text(json.dumps({**TINY, "seeds": [5, 6, 7]}))
    out = tmp_path / "data"
    result = run_cli(
        "reproduce", "--all", "--quick", "--examples", str(examples), "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if ": effect " in line and "·" in line]
    assert [line.split(":")[0] for line in lines] == ["other", "tiny"]
    assert "effect no claims" in lines[1] and "3 runs" in lines[1]
    assert sorted(p.name for p in (out / "quick").iterdir()) == [
        "other.csv",
        "other.json",
        "tiny.csv",
        "tiny.json",
    ]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("nope",), "no file"),
        (("tiny", "--all"), "not both"),
        ((), "name one or more"),
        (("tiny", "--quick", "--gpu"), "--quick and --gpu name different files: give one"),
        (("tiny", "--gpu", "--paper"), "--gpu and --paper name different files"),
    ],
)
def test_reproduce_says_what_is_wrong_before_submitting(
    run_cli: RunCli, sdk: MemlabClient, examples: Path, arguments: tuple[str, ...], message: str
) -> None:
    result = run_cli("reproduce", *arguments, "--examples", str(examples))
    assert result.exit_code == 2
    assert message in plain(result.output)
    assert sdk.list_sweeps()["total"] == 0


def test_files_are_found_by_name_and_variant(examples: Path, tmp_path: Path) -> None:
    assert [f.name for f in find_sweep_files(examples, [], every=True)] == ["tiny"]
    (paper,) = find_sweep_files(examples, [], every=True, variant=".paper")
    assert paper.path.name == "tiny.paper.sweep.json" and paper.name == "tiny"
    (quick,) = find_sweep_files(examples, ["tiny"], every=False, variant=".quick")
    assert quick.path.name == "tiny.quick.sweep.json" and quick.name == "tiny"
    full, again = find_sweep_files(examples, ["tiny", "tiny"], every=False)
    assert full.idempotency_key == again.idempotency_key != quick.idempotency_key
    with pytest.raises(ReproduceError, match="pass --examples"):
        find_sweep_files(tmp_path / "missing", ["tiny"], every=False)
    (examples / "broken.sweep.json").write_text("{")
    with pytest.raises(ReproduceError, match="not valid JSON"):
        find_sweep_files(examples, ["broken"], every=False)


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        ([], "no claims"),
        (["shown", "shown"], "shown"),
        (["shown", "not shown", "reversed"], "partly shown (1 of 3)"),
        (["not shown", "too few seeds"], "not shown"),
        (["too few seeds", "no data"], "undecided"),
    ],
)
def test_effect_sums_up_the_verdicts(verdicts: list[str], expected: str) -> None:
    found: list[dict[str, Any]] = [{"verdict": verdict} for verdict in verdicts]
    assert effect(found) == expected


def test_an_axis_over_a_sub_spec_shows_only_the_fields_that_differ() -> None:
    models = [{"width": 64, "n_layer": n, "mixer": {"type": "attention"}} for n in (1, 2)]
    keys = varying_keys(models)
    assert keys == {"n_layer"}
    assert only(models[1], keys) == {"n_layer": 2}
    assert varying_keys([8, 16]) is None and only(8, None) == 8


def test_report_says_what_is_missing_or_broken(run_cli: RunCli, tmp_path: Path) -> None:
    missing = run_cli("report", "tiny", "--data", str(tmp_path))
    assert missing.exit_code == 2
    assert "run `memlab reproduce tiny` first" in plain(missing.output)
    (tmp_path / "tiny.csv").write_text("model.n_embd,n_queued\n8,0\n")
    (tmp_path / "tiny.json").write_text('{"sweep_id": "x"}')
    broken = run_cli("report", "tiny", "--data", str(tmp_path))
    assert broken.exit_code == 2 and "is not a record" in plain(broken.output)


def test_report_prints_a_curve_per_cell_in_x_order_with_its_theory(
    run_cli: RunCli, tmp_path: Path
) -> None:
    point = "curve.E.gamma={x}.{field}.{stat}"
    columns = ["weights", "n_queued", "n_running", "n_succeeded", "n_failed", "n_cancelled"]
    xs = ["1e-05", "10", "2"]  # as a table sorts them: as text
    for x in xs:
        for field in ("mean", "theory"):
            columns += [point.format(x=x, field=field, stat=s) for s in ("mean", "ci95_high", "n")]
    rows = []
    for weights, level in (("random", 1.0), ("aligned", 0.5)):
        row = [weights, "0", "0", "3", "0", "0"]
        for x in xs:
            row += [str(level * float(x)), str(level * float(x) + 0.1), "3"]  # measured
            row += [str(float(x)), str(float(x)), "3"]  # theory, equal on every seed
        rows.append(row)
    with (tmp_path / "am.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([columns, *rows])
    record = {"claims": [], "sweep_id": "s1", "file": "examples/am.sweep.json"}
    record |= {"file_sha256": "0" * 64, "status": "succeeded", "counts": {"succeeded": 6}}
    (tmp_path / "am.json").write_text(json.dumps(record))

    args = ("report", "am", "--data", str(tmp_path), "--value", "curve.E.gamma=2.mean")
    shown = run_cli(*args, "--curve", "E")
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    start = lines.index("| weights | gamma | E (measured) | E (theory) |")
    assert lines[start + 2 : start + 5] == [
        "| random | 1e-05 | 1e-05 ± 0.1 | 1e-05 |",
        "| random | 2 | 2 ± 0.1 | 2 |",
        "| random | 10 | 10 ± 0.1 | 10 |",
    ]
    assert lines[start + 5] == "| aligned | 1e-05 | 5e-06 ± 0.1 | 1e-05 |"
    unknown = run_cli(*args, "--curve", "F")
    assert unknown.exit_code == 2 and "no curve 'F'" in plain(unknown.output)

    # --cell keeps the cells with those axis values, in the table and in the curves.
    aligned = run_cli(*args, "--curve", "E", "--cell", "weights=aligned").output.splitlines()
    assert [line.split(" | ")[0] for line in aligned if line.startswith("| random")] == []
    assert aligned.count("| aligned | 2 | 1 ± 0.1 | 2 |") == 1
    # Curves alone: no table and, with --no-claims, nothing but the curve.
    alone = run_cli("report", "am", "--data", str(tmp_path), "--curve", "E", "--no-claims")
    assert alone.output.splitlines()[0] == "| weights | gamma | E (measured) | E (theory) |"
    assert "claim" not in alone.output and "Sweep" not in alone.output
    for bad, message in (("nope=1", "has no axis 'nope'"), ("weights", "expected AXIS=VALUE")):
        refused = run_cli(*args, "--cell", bad)
        assert refused.exit_code == 2 and message in plain(refused.output), refused.output
