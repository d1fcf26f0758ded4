"""End to end on the embedded default: `memlab serve` with SQLite and the file broker."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from memlab_client.sdk import MemlabClient
from tests.conftest import tiny_capacity_spec
from tests.e2e.conftest import (
    dump_logs,
    environment_in,
    free_port,
    newest_checkpoint_step,
    python_command,
    run_cli,
    running,
    wait_for,
    wait_until_ready,
)
from tests.e2e.flows import (
    cancel_while_running,
    cross_modal_runs_and_is_probed_in_both_modalities,
    feedback_kinds_run_and_the_policy_is_probed,
    probes_run_after_training_and_on_request,
    shadow_probes_train_their_models_once,
    submit_follow_and_check,
    theory_kinds_run_and_their_samples_are_probed,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def embedded_url(shared_folder: Path) -> Iterator[str]:
    """One `memlab serve` for the module's tests."""
    port = free_port()
    data = shared_folder / "data"
    command = python_command(
        "-m", "client.cli", "serve", "--port", str(port), "--data-dir", str(data)
    )
    with running(command, environment_in(shared_folder), shared_folder / "serve.log") as serve:
        base_url = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(base_url, serve)
            yield base_url
        except BaseException:
            print(dump_logs(shared_folder))
            raise
    assert (data / "memlab.db").exists()


def test_a_posted_experiment_runs_to_success_on_the_embedded_default(embedded_url: str) -> None:
    with MemlabClient(embedded_url) as client:
        submit_follow_and_check(client)


def test_a_misspelt_field_is_refused_with_its_path(embedded_url: str) -> None:
    response = httpx.post(
        f"{embedded_url}/v1/experiments", json={"spec": {"kind": "capacity_tradeoff", "sead": 3}}
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["path"] == "spec.sead"


def test_the_cli_submits_waits_and_prints_the_result(embedded_url: str) -> None:
    completed = run_cli(
        "submit",
        "--kind",
        "capacity_tradeoff",
        "--set",
        "train.steps=40",
        "--set",
        "train.warmup_steps=4",
        "--set",
        "train.eval_every=20",
        "--set",
        "train.batch_size=32",
        "--wait",
        "--url",
        embedded_url,
    )
    assert completed.returncode == 0, completed.stderr
    assert "succeeded" in completed.stdout
    assert "result.final.arithmetic_held_out" in completed.stdout

    listed = run_cli("ls", "--url", embedded_url, timeout=60)
    assert listed.returncode == 0 and "succeeded" in listed.stdout


def test_the_cli_explains_a_bad_spec_and_exits_non_zero(embedded_url: str) -> None:
    completed = run_cli(
        "submit",
        "--kind",
        "capacity_tradeoff",
        "--set",
        "train.lr=-1",
        "--url",
        embedded_url,
        timeout=60,
    )
    assert completed.returncode == 1
    assert "spec.train.lr" in completed.stderr


def test_cancel_works_on_the_embedded_default(embedded_url: str) -> None:
    with MemlabClient(embedded_url) as client:
        cancel_while_running(client)


def test_a_run_survives_a_crash_of_the_whole_embedded_server(
    process_env: dict[str, str], tmp_path: Path
) -> None:
    """SIGKILL `memlab serve` (API and worker) mid-run, start it again on the same data
    folder: the run resumes from its checkpoint and succeeds on its second attempt."""
    from tests.e2e.faults import kill_process_group

    env = {
        **process_env,
        "MEMLAB_HEARTBEAT_INTERVAL_S": "0.5",
        "MEMLAB_HEARTBEAT_STALE_S": "8",
        "MEMLAB_REAPER_INTERVAL_S": "1",
        "MEMLAB_METRICS_FLUSH_INTERVAL_S": "0.2",
    }
    data = tmp_path / "data"

    def serve_command(port: int) -> list[str]:
        return python_command(
            "-m", "client.cli", "serve", "--port", str(port), "--data-dir", str(data)
        )

    spec = {
        "kind": "capacity_tradeoff",
        "train": {
            "steps": 3000,
            "batch_size": 32,
            "warmup_steps": 50,
            "eval_every": 250,
            "checkpoint_every": 250,
            "device": "cpu",
        },
    }
    port = free_port()
    with running(serve_command(port), env, tmp_path / "serve-1.log") as first:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(url, first)
        with MemlabClient(url) as client:
            run_id = client.submit(spec)["id"]
            wait_for(
                lambda: newest_checkpoint_step(client, run_id) >= 500, 180, "a checkpoint at 500"
            )
        kill_process_group(first)

    port = free_port()
    with running(serve_command(port), env, tmp_path / "serve-2.log") as second:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(url, second)
        with MemlabClient(url) as client:
            final = wait_for(
                lambda: (r := client.get(run_id))["status"] in ("succeeded", "failed") and r,
                300,
                "the resumed run to end",
            )
    assert final["status"] == "succeeded", final["error"]
    assert final["attempts"] == 2
    assert final["result"]["training"]["resumed_from_step"] >= 500


def test_sigterm_to_serve_stops_its_worker_too(process_env: dict[str, str], tmp_path: Path) -> None:
    """`kill PID` on `memlab serve` mid-run: serve exits and takes its whole worker (pool
    processes included) with it, so no stale worker consumes the queue after a restart.
    (uvicorn re-raises the signal after shutting down; once, that skipped the stop.)"""
    env = {**process_env, "MEMLAB_WORKER_STOP_GRACE_S": "1"}
    port = free_port()
    command = python_command(
        "-m", "client.cli", "serve", "--port", str(port), "--data-dir", str(tmp_path / "data")
    )
    spec = {"kind": "capacity_tradeoff", "train": {"steps": 20000, "device": "cpu"}}
    with running(command, env, tmp_path / "serve.log") as serve:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(url, serve)
        with MemlabClient(url) as client:
            run_id = client.submit(spec)["id"]
            wait_for(lambda: client.get(run_id)["status"] == "running", 120, "the run to start")
        from tests.e2e.faults import descendants, processes

        worker = descendants(serve.pid)  # the Celery main process and its pool
        assert len(worker) >= 2
        os.kill(serve.pid, signal.SIGTERM)  # serve alone, as `kill PID` does
        serve.wait(timeout=60)
        wait_for(lambda: not worker & set(processes()), 20, "every worker process to end")


def test_the_theory_kinds_run_and_their_samples_are_probed_on_the_embedded_default(
    embedded_url: str,
) -> None:
    with MemlabClient(embedded_url) as client:
        theory_kinds_run_and_their_samples_are_probed(client)


def test_the_feedback_kinds_run_and_the_policy_is_probed_on_the_embedded_default(
    embedded_url: str,
) -> None:
    with MemlabClient(embedded_url) as client:
        feedback_kinds_run_and_the_policy_is_probed(client)


def test_cross_modal_runs_and_is_probed_in_both_modalities_on_the_embedded_default(
    embedded_url: str,
) -> None:
    with MemlabClient(embedded_url) as client:
        cross_modal_runs_and_is_probed_in_both_modalities(client)


def test_shadow_probes_train_their_models_once_on_the_embedded_default(
    embedded_url: str,
) -> None:
    with MemlabClient(embedded_url) as client:
        shadow_probes_train_their_models_once(client)


def test_the_cli_probes_a_finished_experiment(embedded_url: str) -> None:
    with MemlabClient(embedded_url) as client:
        experiment_id = probes_run_after_training_and_on_request(client)
    completed = run_cli(
        "probe",
        experiment_id,
        "extraction",
        "--param",
        "prefix_tokens=12",
        "--wait",
        "--url",
        embedded_url,
    )
    assert completed.returncode == 0, completed.stderr
    assert (
        "succeeded" in completed.stdout and "result.members.fraction_memorized" in completed.stdout
    )
    refused = run_cli("probe", experiment_id, "exposure", "--url", embedded_url, timeout=60)
    assert refused.returncode == 1
    assert "needs canaries" in refused.stderr
    listed = run_cli("probes", experiment_id, "--url", embedded_url, timeout=60)
    assert listed.returncode == 0 and listed.stdout.count(experiment_id) == 4


def test_the_cli_runs_a_sweep_file_batched_and_prints_its_children(
    embedded_url: str, tmp_path: Path
) -> None:
    base = tiny_capacity_spec(task="facts", n_facts=20, train={"steps": 40, "eval_every": 20})
    sweep_file = tmp_path / "seeds.sweep.json"
    sweep_file.write_text(json.dumps({"base": base, "seeds": 3, "name": "cli-seeds"}))
    completed = run_cli("sweep", str(sweep_file), "--wait", "--url", embedded_url)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "3 experiments in 1 group" in " ".join(completed.stdout.split())
    with MemlabClient(embedded_url) as client:
        sweep = client.list_sweeps()["items"][0]
        children = client.list(sweep_id=sweep["id"])["items"]
    assert sweep["status"] == "succeeded" and sweep["counts"]["succeeded"] == 3
    assert [c["batched"] for c in children] == [True, True, True]
    for child in children:
        assert child["id"][:8] in completed.stdout
