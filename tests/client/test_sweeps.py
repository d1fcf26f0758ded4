"""Sweeps from the client's side: the SDK's sweep methods and the `memlab sweep*` commands,
against a stand-in for the server's sweep routes (tests/client/fake_sweeps.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner, Result

import memlab_client.cli as cli
from memlab_client.sdk import MemlabClient
from tests.client.conftest import OUTPUT_WIDTH
from tests.client.fake_sweeps import SWEEP_ID, FakeSweepServer, child, counts, sweep_out

RunCli = Callable[..., Result]

RUNNING = sweep_out(status="running", counts=counts(queued=2, running=2, succeeded=2), progress=0.4)
SUCCEEDED = sweep_out(
    status="succeeded", counts=counts(succeeded=6), progress=1.0, finished_at="2025-06-01T13:00Z"
)
GRID = [child(n_embd, seed, score=n_embd / 100) for n_embd in (56, 14, 28) for seed in (1, 0)]


def summary(sweep: dict[str, Any]) -> dict[str, Any]:
    """What an event's data holds: the sweep's status, counts, progress and n_runs."""
    return {key: sweep[key] for key in ("status", "counts", "progress", "n_runs")}


@pytest.fixture
def fake() -> FakeSweepServer:
    return FakeSweepServer(children=list(GRID))


@pytest.fixture
def sdk(fake: FakeSweepServer) -> MemlabClient:
    return MemlabClient("http://memlab.test", http=fake.http())


@pytest.fixture
def run_cli(fake: FakeSweepServer, monkeypatch: pytest.MonkeyPatch) -> RunCli:
    """`run_cli("sweep", "file.json")`: the `memlab` command against the stand-in."""
    monkeypatch.setattr(cli, "_connect", lambda url: MemlabClient(url, http=fake.http()))
    monkeypatch.setattr(cli, "console", Console(width=OUTPUT_WIDTH))
    monkeypatch.setattr(cli, "err_console", Console(width=OUTPUT_WIDTH, stderr=True))
    runner = CliRunner()

    def invoke(*args: str, stdin: str | None = None) -> Result:
        return runner.invoke(cli.app, list(args), input=stdin)

    return invoke


@pytest.fixture
def request_file(tmp_path: Path) -> Path:
    path = tmp_path / "sweep.json"
    path.write_text(cli.SWEEP_EXAMPLE)
    return path


def table_rows(output: str) -> list[list[str]]:
    """The cells of each row of the rich tables in `output`, header rows included."""
    rows = []
    for line in output.splitlines():
        for rule in ("│", "┃"):
            if line.startswith(rule):
                rows.append([cell.strip() for cell in line.strip(rule).split(rule)])
    return rows


# ---------------------------------------------------------------- SDK


def test_sweep_posts_the_request_with_reuse_and_an_idempotency_key(
    sdk: MemlabClient, fake: FakeSweepServer
) -> None:
    request = json.loads(cli.SWEEP_EXAMPLE)
    answer = sdk.sweep(request, reuse=True, idempotency_key="grid-1")
    assert answer["id"] == SWEEP_ID
    sent = fake.requests[-1]
    assert (sent.method, sent.url.path) == ("POST", "/v1/sweeps")
    assert sent.url.params["reuse"] == "true"
    assert sent.headers["Idempotency-Key"] == "grid-1"
    assert json.loads(sent.content) == request
    sdk.sweep(request)
    assert fake.requests[-1].url.params["reuse"] == "false"
    assert "Idempotency-Key" not in fake.requests[-1].headers


def test_the_experiment_listing_filters_by_sweep_and_sweep_experiments_reads_every_page(
    sdk: MemlabClient, fake: FakeSweepServer
) -> None:
    assert sdk.list(sweep_id=SWEEP_ID, limit=2)["total"] == 6
    assert fake.requests[-1].url.params["sweep_id"] == SWEEP_ID
    assert sdk.sweep_experiments(SWEEP_ID, page_size=4) == GRID
    offsets = [r.url.params["offset"] for r in fake.requests[1:]]
    assert offsets == ["0", "4"]


def test_wait_sweep_follows_the_events_to_their_end_and_returns_the_final_sweep(
    sdk: MemlabClient, fake: FakeSweepServer
) -> None:
    fake.events = [("counts", summary(RUNNING)), ("end", summary(SUCCEEDED))]
    fake.polls = [SUCCEEDED]
    seen: list[dict[str, Any]] = []
    assert sdk.wait_sweep(SWEEP_ID, on_update=seen.append) == SUCCEEDED
    assert seen == [summary(RUNNING), summary(SUCCEEDED)]
    paths = [r.url.path for r in fake.requests]
    assert paths == [f"/v1/sweeps/{SWEEP_ID}/events", f"/v1/sweeps/{SWEEP_ID}"]


@pytest.mark.parametrize("drop_stream", [True, False], ids=["stream-fails", "stream-ends-early"])
def test_wait_sweep_polls_the_sweep_when_the_stream_stops_before_its_end(
    sdk: MemlabClient, fake: FakeSweepServer, drop_stream: bool
) -> None:
    fake.events = [("counts", summary(RUNNING))]
    fake.drop_stream = drop_stream
    fake.polls = [RUNNING, RUNNING, SUCCEEDED]
    seen: list[dict[str, Any]] = []
    final = sdk.wait_sweep(SWEEP_ID, on_update=seen.append, poll_interval=0.0)
    assert final == SUCCEEDED
    assert seen == [summary(RUNNING), RUNNING, RUNNING, SUCCEEDED]


def test_wait_sweep_raises_once_its_timeout_has_passed(
    sdk: MemlabClient, fake: FakeSweepServer
) -> None:
    fake.polls = [RUNNING]  # never ends
    with pytest.raises(TimeoutError, match=f"sweep {SWEEP_ID} has not ended"):
        sdk.wait_sweep(SWEEP_ID, timeout=0.05, poll_interval=0.01)


# ---------------------------------------------------------------- memlab sweep


@pytest.mark.parametrize("drop_stream", [False, True], ids=["stream", "stream-fails"])
def test_sweep_wait_follows_the_counts_then_lists_the_experiments_in_cell_order(
    run_cli: RunCli, fake: FakeSweepServer, request_file: Path, drop_stream: bool
) -> None:
    fake.events = [("counts", summary(RUNNING))]
    if not drop_stream:
        fake.events.append(("end", summary(SUCCEEDED)))
    fake.drop_stream = drop_stream
    fake.polls = [SUCCEEDED]
    result = run_cli("sweep", str(request_file), "--wait", "--name", "widths", "--tag", "mine")
    assert result.exit_code == 0, result.stdout + result.stderr
    sent = json.loads(fake.requests[0].content)
    assert sent["name"] == "widths" and sent["tags"] == ["sweep:capacity", "mine"]
    assert f"submitted sweep {SWEEP_ID} (capacity_tradeoff: 6 experiments in 3 groups)" in (
        result.stdout
    )
    # The progress display ends on the final counts.
    assert "succeeded · 6/6 ended · 6 succeeded" in result.stdout
    rows = table_rows(result.stdout)
    assert rows[0] == ["experiment", "model.n_embd", "seed", "status", "headline"]
    cells = [(row[1], row[2]) for row in rows[1:]]
    assert cells == [(n, s) for n in ("14", "28", "56") for s in ("0", "1")]
    assert rows[1][3:] == ["succeeded", "score 0.14 · facts 0.14"]


def test_sweep_wait_exits_1_and_names_each_failed_experiment(
    run_cli: RunCli, fake: FakeSweepServer, request_file: Path
) -> None:
    failed = child(56, 1, status="failed", error="Traceback …\n  …\nRuntimeError: out of memory\n")
    fake.children = [*GRID[1:], failed]
    final = sweep_out(status="failed", counts=counts(succeeded=5, failed=1), progress=1.0)
    fake.events = [("end", summary(final))]
    fake.polls = [final]
    result = run_cli("sweep", str(request_file), "--wait")
    assert result.exit_code == 1
    row = next(row for row in table_rows(result.stdout) if row[1:3] == ["56", "1"])
    assert row[3:] == ["failed", ""]
    assert f"sweep {SWEEP_ID}: failed · 6/6 ended · 5 succeeded · 1 failed" in result.stdout
    assert f"experiment {failed['id']} failed: RuntimeError: out of memory" in result.stderr


def test_sweep_without_wait_only_submits_and_reads_stdin(
    run_cli: RunCli, fake: FakeSweepServer
) -> None:
    result = run_cli("sweep", "-", "--reuse", stdin=cli.SWEEP_EXAMPLE)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert [r.url.path for r in fake.requests] == ["/v1/sweeps"]
    assert fake.requests[0].url.params["reuse"] == "true"
    assert json.loads(fake.requests[0].content) == json.loads(cli.SWEEP_EXAMPLE)


@pytest.mark.parametrize(
    ("file_text", "message"),
    [
        (None, "cannot read"),
        ("{oops", "is not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"kind": "capacity_tradeoff"}', "has no `base`"),
        ('{"base": {"kind": "capacity_tradeoff"}, "axes": {"train.lr": [NaN]}}', "NaN"),
    ],
    ids=["missing", "not-json", "not-an-object", "a-spec", "nan"],
)
def test_a_bad_sweep_file_gets_a_message_not_a_traceback(
    run_cli: RunCli, fake: FakeSweepServer, tmp_path: Path, file_text: str | None, message: str
) -> None:
    path = tmp_path / "sweep.json"
    if file_text is not None:
        path.write_text(file_text)
    result = run_cli("sweep", str(path))
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    assert message in " ".join(result.stderr.replace("│", " ").split())
    assert fake.requests == []


@pytest.mark.parametrize(
    ("error", "lines"),
    [
        (
            {
                "code": "validation_error",
                "message": "invalid sweep: axes.model.n_embd.1: must be at least 1",
                "details": [
                    {
                        "path": "axes.model.n_embd.1",
                        "message": "must be at least 1 (value 0)",
                        "type": "greater_than_equal",
                    },
                    {"path": "axes.train.lrr", "message": "no such field", "type": "extra"},
                ],
            },
            [
                "error: HTTP 422 validation_error: invalid sweep",
                "  axes.model.n_embd.1: must be at least 1 (value 0)",
                "  axes.train.lrr: no such field",
            ],
        ),
        (
            {
                "code": "limit_exceeded",
                "message": "sweep too large",
                "details": [
                    {
                        "path": "axes",
                        "message": "18000 runs; MEMLAB_MAX_SWEEP_RUNS is 1000",
                        "type": "limit_exceeded",
                    }
                ],
            },
            [
                "error: HTTP 422 limit_exceeded: sweep too large",
                "  axes: 18000 runs; MEMLAB_MAX_SWEEP_RUNS is 1000",
            ],
        ),
    ],
    ids=["bad-axis", "too-many-runs"],
)
def test_a_refused_sweep_shows_each_detail_path_and_message(
    run_cli: RunCli,
    fake: FakeSweepServer,
    request_file: Path,
    error: dict[str, Any],
    lines: list[str],
) -> None:
    fake.submit_error = (422, {"error": error})
    result = run_cli("sweep", str(request_file), "--wait")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == lines
    assert result.stdout == ""


def test_the_help_example_is_the_docs_example_and_a_whole_request() -> None:
    help_text = CliRunner().invoke(cli.app, ["sweep", "--help"]).stdout
    assert '"model.n_embd": [14, 28, 56]' in help_text
    docs = (Path(__file__).parents[2] / "docs" / "api.md").read_text()
    assert f"```json\n{cli.SWEEP_EXAMPLE}\n```" in docs
    request = json.loads(cli.SWEEP_EXAMPLE)
    assert {"base", "axes", "seeds", "method", "batch", "name", "tags"} <= set(request)


# ---------------------------------------------------------------- other sweep commands


def test_sweeps_lists_one_tab_separated_line_per_sweep_when_piped(
    run_cli: RunCli, fake: FakeSweepServer
) -> None:
    fake.polls = [SUCCEEDED]
    result = run_cli("sweeps", "--kind", "capacity_tradeoff", "--tag", "sweep:capacity")
    assert result.exit_code == 0, result.stdout + result.stderr
    fields = [SWEEP_ID, "", "capacity_tradeoff", "grid", "succeeded", "100%", "6"]
    fields += ["6 succeeded", "2025-06-01 12:00"]
    assert result.stdout.splitlines() == ["\t".join(fields)]
    params = fake.requests[0].url.params
    assert (params["kind"], params["tag"]) == ("capacity_tradeoff", "sweep:capacity")


def test_sweep_show_prints_the_sweep_and_its_experiments(
    run_cli: RunCli, fake: FakeSweepServer
) -> None:
    fake.polls = [RUNNING]
    fake.children = [child(14, 0), child(14, 1, status="running", score=None)]
    result = run_cli("sweep-show", SWEEP_ID)
    assert result.exit_code == 0, result.stdout + result.stderr
    rows = table_rows(result.stdout)
    assert ["counts", "2 queued, 2 running, 2 succeeded"] in rows
    assert ["axes.model.n_embd", "[14, 28, 56]"] in rows
    assert [child(14, 1)["id"], "14", "1", "running", ""] in rows


def test_sweep_cancel_prints_the_counts_after_the_cancel(
    run_cli: RunCli, fake: FakeSweepServer
) -> None:
    fake.polls = [sweep_out(status="cancelled", counts=counts(succeeded=2, cancelled=4))]
    result = run_cli("sweep-cancel", SWEEP_ID)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert fake.requests[0].method == "POST"
    assert fake.requests[0].url.path == f"/v1/sweeps/{SWEEP_ID}/cancel"
    assert result.stdout.strip() == (
        f"{SWEEP_ID}: cancelled (cancel requested) · 2 succeeded, 4 cancelled"
    )


def test_ls_sweep_lists_only_that_sweeps_experiments(
    run_cli: RunCli, fake: FakeSweepServer
) -> None:
    result = run_cli("ls", "--sweep", SWEEP_ID)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert fake.requests[0].url.params["sweep_id"] == SWEEP_ID
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == [c["id"] for c in GRID]


def test_an_experiment_headline_prefers_the_final_score_then_accuracies() -> None:
    capacity = {
        "n_parameters": 9000,
        "final": {"arithmetic_all": 0.25, "facts": 0.5, "score": 0.375},
    }
    assert cli._experiment_headline(capacity) == "score 0.375 · arithmetic_all 0.25"
    recall = {"width": 64, "n_parameters": 9000, "test_accuracy": 0.9, "train_accuracy": 1.0}
    assert cli._experiment_headline(recall) == "test_accuracy 0.9 · train_accuracy 1"
    assert cli._experiment_headline({"width": 64, "n_parameters": 9000}) == (
        "width 64 · n_parameters 9000"
    )
    assert cli._experiment_headline(None) == ""
