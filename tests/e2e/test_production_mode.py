"""End to end on the shared-server stack: uvicorn + a Celery worker + PostgreSQL + Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from memlab_client.sdk import MemlabClient
from tests.conftest import _truncate_all, tiny_capacity_spec
from tests.e2e.conftest import (
    dump_logs,
    environment_in,
    free_port,
    python_command,
    run_cli,
    running,
    wait_for,
    wait_until_ready,
)
from tests.e2e.flows import (
    a_sweep_runs_as_one_batched_group,
    cancel_while_running,
    cross_modal_runs_and_is_probed_in_both_modalities,
    feedback_kinds_run_and_the_policy_is_probed,
    one_child_and_then_a_whole_sweep_are_cancelled,
    probes_run_after_training_and_on_request,
    shadow_probes_train_their_models_once,
    submit_follow_and_check,
    theory_kinds_run_and_their_samples_are_probed,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]
REDIS_E2E_DB = 12


@pytest.fixture(scope="module")
def production_client(
    postgres_server_url: str, redis_server_url: str, shared_folder: Path
) -> Iterator[MemlabClient]:
    """One API and one worker for the module's tests."""
    _truncate_all(postgres_server_url)
    broker = f"{redis_server_url}/{REDIS_E2E_DB}"
    redis.Redis.from_url(broker).flushdb()
    env = {
        **environment_in(shared_folder),
        "MEMLAB_DATABASE_URL": postgres_server_url,
        "MEMLAB_BROKER_URL": broker,
    }
    tmp_path = shared_folder
    port = free_port()
    api_command = python_command(
        "-m", "uvicorn", "api.app:create_app", "--factory", "--port", str(port)
    )
    # Declared devices: the registry shows them without a GPU on this machine.
    worker_command = python_command(
        "-m", "client.cli", "worker", "--name", "e2e", "--devices", "H100:80"
    )
    with (
        running(api_command, env, tmp_path / "api.log") as api,
        running(worker_command, env, tmp_path / "worker.log"),
    ):
        base_url = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(base_url, api)
            with MemlabClient(base_url) as client:
                yield client
        except BaseException:
            print(dump_logs(tmp_path))
            raise


def test_a_posted_experiment_trains_on_a_real_worker_and_its_results_are_queryable(
    production_client: MemlabClient,
) -> None:
    submit_follow_and_check(production_client)


def test_cancelling_a_running_experiment_stops_it(production_client: MemlabClient) -> None:
    cancel_while_running(production_client)


def test_probes_run_on_a_real_worker_after_training_and_on_request(
    production_client: MemlabClient,
) -> None:
    probes_run_after_training_and_on_request(production_client)


def test_the_theory_kinds_run_and_their_samples_are_probed_on_a_real_worker(
    production_client: MemlabClient,
) -> None:
    theory_kinds_run_and_their_samples_are_probed(production_client)


def test_the_feedback_kinds_run_and_the_policy_is_probed_on_a_real_worker(
    production_client: MemlabClient,
) -> None:
    feedback_kinds_run_and_the_policy_is_probed(production_client)


def test_cross_modal_runs_and_is_probed_in_both_modalities_on_a_real_worker(
    production_client: MemlabClient,
) -> None:
    cross_modal_runs_and_is_probed_in_both_modalities(production_client)


def test_shadow_probes_train_their_models_once_on_a_real_worker(
    production_client: MemlabClient,
) -> None:
    shadow_probes_train_their_models_once(production_client)


TINY_TRAIN = {
    "steps": 30,
    "warmup_steps": 5,
    "eval_every": 30,
    "checkpoint_every": 30,
    "device": "cpu",
}
TINY_SPECS = {
    "associative_recall": {"train_examples": 64, "test_examples": 32, "train": TINY_TRAIN},
    "kg_memorization": {"graph": {"n_concepts": 60}, "train": TINY_TRAIN},
    "fictional_qa": {"n_events": 12, "held_out_events": 4, "train": TINY_TRAIN},
}


@pytest.mark.parametrize("kind", sorted(TINY_SPECS))
def test_each_sequence_kind_runs_through_the_api_on_a_real_worker(
    kind: str, production_client: MemlabClient
) -> None:
    experiment = production_client.submit({"kind": kind, **TINY_SPECS[kind]}, tags=["kinds"])
    final = production_client.wait(experiment["id"])
    assert final["status"] == "succeeded", final["error"]
    assert final["result"]["training"]["steps"] == 30
    series = production_client.metrics(experiment["id"], keys=["train/loss"])["series"]
    assert series["train/loss"]["steps"][-1] == 30


def test_a_sweep_trains_batched_on_a_real_worker_and_its_children_can_be_cancelled(
    production_client: MemlabClient,
) -> None:
    a_sweep_runs_as_one_batched_group(production_client)
    one_child_and_then_a_whole_sweep_are_cancelled(production_client)


def test_the_worker_registers_its_devices_and_shows_what_it_runs(
    production_client: MemlabClient,
) -> None:
    long_spec = tiny_capacity_spec(train={"steps": 1_000_000, "checkpoint_every": 1_000_000})
    experiment = production_client.submit(long_spec)
    wait_for(lambda: production_client.get(experiment["id"])["status"] == "running", 120, "running")
    (node,) = production_client.workers()
    assert node["name"].startswith("e2e@") and node["live"] and node["queues"] == ["cpu", "gpu"]
    assert node["devices"] == [{"index": 0, "name": "H100", "memory_gib": 80.0}]
    assert [run["id"] for run in node["running"]] == [experiment["id"]]
    assert node["busy"] == 1 and node["concurrency"] == 1
    shown = run_cli("workers", "--url", production_client.base_url)
    assert shown.returncode == 0 and "H100 80 GiB" in shown.stdout, shown.stdout + shown.stderr
    production_client.cancel(experiment["id"])
    assert production_client.wait(experiment["id"])["status"] == "cancelled"
