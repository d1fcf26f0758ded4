"""End to end on the embedded default: `memlab serve` with SQLite and the file broker."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from client.sdk import MemlabClient
from tests.e2e.conftest import (
    REPO_ROOT,
    dump_logs,
    free_port,
    python_command,
    running,
    wait_until_ready,
)
from tests.e2e.flows import cancel_while_running, submit_follow_and_check

pytestmark = pytest.mark.e2e


@pytest.fixture
def embedded_url(process_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    port = free_port()
    command = python_command(
        "-m", "client.cli", "serve", "--port", str(port), "--data-dir", str(tmp_path / "data")
    )
    with running(command, process_env, tmp_path / "serve.log") as serve:
        base_url = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(base_url, serve)
            yield base_url
        except BaseException:
            print(dump_logs(tmp_path))
            raise
    assert (tmp_path / "data" / "memlab.db").exists()


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
    completed = subprocess.run(
        python_command(
            "-m",
            "client.cli",
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
        ),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    assert "succeeded" in completed.stdout
    assert "result.final.arithmetic_held_out" in completed.stdout

    listed = subprocess.run(
        python_command("-m", "client.cli", "ls", "--url", embedded_url),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0 and "succeeded" in listed.stdout


def test_the_cli_explains_a_bad_spec_and_exits_non_zero(embedded_url: str) -> None:
    completed = subprocess.run(
        python_command(
            "-m",
            "client.cli",
            "submit",
            "--kind",
            "capacity_tradeoff",
            "--set",
            "train.lr=-1",
            "--url",
            embedded_url,
        ),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 1
    assert "spec.train.lr" in completed.stderr


def test_cancel_works_on_the_embedded_default(embedded_url: str) -> None:
    with MemlabClient(embedded_url) as client:
        cancel_while_running(client)
