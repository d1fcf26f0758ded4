"""Faults injected for real: a SIGKILLed worker, a restarted Redis, a vanished PostgreSQL,
and a burst of concurrent submissions. Every accepted run must end exactly once, intact."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import func, select

from memlab_client.sdk import MemlabClient
from store.db import make_engine
from store.models import Run
from tests.conftest import _truncate_all, tiny_capacity_spec
from tests.e2e.conftest import (
    dump_logs,
    free_port,
    newest_checkpoint_step,
    python_command,
    running,
    wait_for,
    wait_until_ready,
)
from tests.e2e.faults import CuttableProxy, PrivateRedis, kill_process_group

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]
REDIS_FAULTS_DB = 11

# Short clocks so a lost worker is noticed in seconds rather than minutes.
FAST_RECOVERY = {
    "MEMLAB_HEARTBEAT_INTERVAL_S": "0.5",
    "MEMLAB_HEARTBEAT_STALE_S": "8",  # 16 missed beats: not mistaken for death on a busy box
    "MEMLAB_REAPER_INTERVAL_S": "1",
    "MEMLAB_REDELIVER_AFTER_S": "5",
    "MEMLAB_METRICS_FLUSH_INTERVAL_S": "0.2",
    "MEMLAB_DB_RETRY_S": "120",
    "MEMLAB_DISPATCH_INTERVAL_S": "0.2",
}


class Stack:
    """Starts the API and workers as real processes against one database and broker."""

    def __init__(self, tmp_path: Path, env: dict[str, str], exits: ExitStack) -> None:
        self.tmp_path = tmp_path
        self.env = env
        self.exits = exits
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def start_api(self) -> Any:
        command = python_command(
            "-m", "uvicorn", "api.app:create_app", "--factory", "--port", str(self.port)
        )
        api = self.exits.enter_context(running(command, self.env, self.tmp_path / "api.log"))
        wait_until_ready(self.url, api)
        return api

    def start_worker(self, name: str, concurrency: int = 1) -> Any:
        command = python_command(
            "-m", "client.cli", "worker", "--name", name, "--concurrency", str(concurrency)
        )
        return self.exits.enter_context(running(command, self.env, self.tmp_path / f"{name}.log"))


@pytest.fixture
def stack_env(
    postgres_server_url: str, redis_server_url: str, process_env: dict[str, str]
) -> dict[str, str]:
    _truncate_all(postgres_server_url)
    broker = f"{redis_server_url}/{REDIS_FAULTS_DB}"
    redis.Redis.from_url(broker).flushdb()
    return {
        **process_env,
        **FAST_RECOVERY,
        "MEMLAB_DATABASE_URL": postgres_server_url,
        "MEMLAB_BROKER_URL": broker,
    }


@pytest.fixture
def exits(tmp_path: Path) -> Iterator[ExitStack]:
    with ExitStack() as stack:
        try:
            yield stack
        except BaseException:
            print(dump_logs(tmp_path))
            raise


def test_a_killed_worker_s_run_and_batched_group_resume_from_their_checkpoints_once(
    stack_env: dict[str, str], exits: ExitStack, tmp_path: Path
) -> None:
    """A solo run and a two-member batched group train side by side on one worker (two
    processes); SIGKILL it; a new worker resumes each from its checkpoints, and every
    metric point is there once."""
    stack = Stack(tmp_path, stack_env, exits)
    stack.start_api()
    first_worker = stack.start_worker("doomed", concurrency=2)
    client = exits.enter_context(MemlabClient(stack.url))
    steps = 3000
    spec = tiny_capacity_spec(
        train={"steps": steps, "eval_every": 250, "checkpoint_every": 250, "warmup_steps": 50}
    )
    run_id = client.submit(spec)["id"]
    sweep = client.sweep({"base": spec, "seeds": [1, 2]})
    assert sweep["n_groups"] == 1
    member_ids = [str(c["id"]) for c in client.list(sweep_id=sweep["id"])["items"]]
    every_run = [run_id, *member_ids]

    def checkpoint_step() -> int:
        return min(newest_checkpoint_step(client, i) for i in every_run)

    wait_for(lambda: checkpoint_step() >= 500, 120, "every run's checkpoint at step 500")
    kill_process_group(first_worker)  # SIGKILL: no clean shutdown, nothing acknowledged
    assert {client.get(i)["status"] for i in every_run} == {"running"}
    saved = checkpoint_step()

    stack.start_worker("rescuer", concurrency=2)
    assert client.wait_sweep(sweep["id"], timeout=240)["status"] == "succeeded"
    wait_for(lambda: client.get(run_id)["status"] in ("succeeded", "failed"), 240, "the end")
    log_every = steps // 200
    for each in every_run:
        final = client.get(each)
        assert final["status"] == "succeeded", final["error"]
        assert final["attempts"] == 2
        assert final["batched"] is (None if each == run_id else True)
        assert final["result"]["training"]["resumed_from_step"] >= saved >= 500
        series = client.metrics(each)["series"]  # every point once: none duplicated
        assert series["train/loss"]["steps"] == list(range(log_every, steps + 1, log_every))
        assert series["eval/arithmetic_all"]["steps"] == list(range(250, steps + 1, 250))


def test_runs_survive_a_redis_restart_and_a_broker_that_is_down_at_submit_time(
    postgres_server_url: str, process_env: dict[str, str], exits: ExitStack, tmp_path: Path
) -> None:
    """The dispatcher hands three runs to a worker that is frozen (SIGSTOP) before it can
    take them; Redis restarts without persistence and the worker is killed: their messages
    are gone, and the dispatcher hands them out again to the next worker."""
    _truncate_all(postgres_server_url)
    broker = exits.enter_context(PrivateRedis(free_port(), tmp_path))
    env = {
        **process_env,
        **FAST_RECOVERY,
        # The frozen node must stay live while the runs are handed to it, however slow
        # this machine is; its runs are handed out again once it is not.
        "MEMLAB_HEARTBEAT_STALE_S": "30",
        "MEMLAB_DATABASE_URL": postgres_server_url,
        "MEMLAB_BROKER_URL": broker.url,
    }
    stack = Stack(tmp_path, env, exits)
    stack.start_api()
    client = exits.enter_context(MemlabClient(stack.url))
    spec = tiny_capacity_spec(train={"steps": 20, "eval_every": 10, "checkpoint_every": 10})

    frozen = stack.start_worker("frozen", concurrency=3)
    wait_for(lambda: any(w["live"] for w in client.workers()), 60, "the worker to register")
    os.killpg(frozen.pid, signal.SIGSTOP)  # still registered, for heartbeat_stale_s
    published = [client.submit({**spec, "seed": seed})["id"] for seed in range(3)]
    wait_for(
        lambda: all(client.get(i)["enqueued_at"] for i in published), 60, "the runs handed out"
    )
    broker.restart()  # nothing on disk: every queued message is gone
    kill_process_group(frozen)  # and with it any message it had popped

    broker.stop()
    unsent = client.submit({**spec, "seed": 99})  # still accepted: the database is the truth
    assert unsent["status"] == "queued"
    broker.start()

    stack.start_worker("after-restart")
    ids = [*published, unsent["id"]]
    finals = wait_for(
        lambda: (
            all(client.get(i)["status"] == "succeeded" for i in ids)
            and [client.get(i) for i in ids]
        ),
        180,
        "every run to succeed",
    )
    assert [f["attempts"] for f in finals] == [1, 1, 1, 1]


def test_a_database_outage_gives_503s_then_everything_continues(
    postgres_server_url: str,
    redis_server_url: str,
    process_env: dict[str, str],
    exits: ExitStack,
    tmp_path: Path,
) -> None:
    _truncate_all(postgres_server_url)
    redis.Redis.from_url(f"{redis_server_url}/{REDIS_FAULTS_DB}").flushdb()
    proxy = CuttableProxy(free_port(), ("127.0.0.1", 5432))
    proxy.start()
    exits.callback(proxy.cut)
    through_proxy = postgres_server_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    assert through_proxy != postgres_server_url
    env = {
        **process_env,
        **FAST_RECOVERY,
        "MEMLAB_HEARTBEAT_STALE_S": "60",  # the outage is shorter than a lost-worker verdict
        "MEMLAB_DATABASE_URL": through_proxy,
        "MEMLAB_BROKER_URL": f"{redis_server_url}/{REDIS_FAULTS_DB}",
    }
    stack = Stack(tmp_path, env, exits)
    stack.start_api()
    stack.start_worker("patient")
    client = exits.enter_context(MemlabClient(stack.url))
    spec = tiny_capacity_spec(train={"steps": 1500, "eval_every": 250, "checkpoint_every": 250})
    run_id = client.submit(spec)["id"]
    wait_for(lambda: client.get(run_id)["progress"] > 0.1, 120, "the run to be under way")

    proxy.cut()
    down = httpx.get(f"{stack.url}/v1/experiments/{run_id}", timeout=30)
    assert down.status_code == 503
    assert down.headers["retry-after"]
    assert httpx.get(f"{stack.url}/readyz", timeout=30).status_code == 503
    time.sleep(3)
    proxy.restore()

    final = wait_for(
        lambda: (r := client.get(run_id))["status"] in ("succeeded", "failed") and r, 240, "the end"
    )
    assert final["status"] == "succeeded", final["error"]
    assert final["attempts"] == 1  # the worker waited the outage out instead of crashing
    assert httpx.get(f"{stack.url}/readyz", timeout=30).status_code == 200


def test_200_concurrent_submissions_make_200_runs_and_no_server_error(
    stack_env: dict[str, str], exits: ExitStack, tmp_path: Path, postgres_server_url: str
) -> None:
    stack = Stack(tmp_path, stack_env, exits)
    stack.start_api()
    spec = tiny_capacity_spec()

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=stack.url, timeout=120, limits=limits) as http:
            return await asyncio.gather(
                *(
                    http.post("/v1/experiments", json={"spec": {**spec, "seed": i}})
                    for i in range(200)
                )
            )

    responses = asyncio.run(burst())
    assert sorted({r.status_code for r in responses}) == [201]
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 200
    engine = make_engine(postgres_server_url)
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(Run)) == 200
    engine.dispose()

    # With no worker running, every run is still queued; cancelling one ends it at once.
    client = exits.enter_context(MemlabClient(stack.url))
    victim = next(iter(ids))
    assert client.cancel(victim)["status"] == "cancelled"


def test_a_drained_worker_finishes_its_run_takes_no_other_and_loses_nothing(
    stack_env: dict[str, str], exits: ExitStack, tmp_path: Path
) -> None:
    """`memlab worker --drain NAME` under load: the node ends the run it holds, exits
    without starting another, and a node started later runs every run left, each once."""
    import os
    import subprocess

    stack = Stack(tmp_path, stack_env, exits)
    stack.start_api()
    node = stack.start_worker("drained")
    client = exits.enter_context(MemlabClient(stack.url))
    spec = tiny_capacity_spec(train={"steps": 400, "eval_every": 200, "checkpoint_every": 200})
    ids = [client.submit(spec)["id"] for _ in range(5)]
    first = wait_for(
        lambda: next((i for i in ids if client.get(i)["status"] == "running"), None),
        120,
        "a run to start",
    )
    (listed,) = client.workers()
    drain = subprocess.run(
        python_command("-m", "client.cli", "worker", "--drain", listed["name"]),
        env={**os.environ, **stack_env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert drain.returncode == 0, drain.stdout + drain.stderr
    wait_for(lambda: node.poll() is not None, 120, "the drained worker to exit")
    assert client.get(first)["status"] == "succeeded"  # finished, not cut short
    left = [i for i in ids if client.get(i)["status"] != "succeeded"]
    assert left and {client.get(i)["status"] for i in left} == {"queued"}
    (stopped,) = client.workers(stopped=True)
    assert stopped["stopped_at"] is not None and not stopped["live"]

    stack.start_worker("after")
    for each in ids:
        wait_for(lambda i=each: client.get(i)["status"] == "succeeded", 240, f"{each} to end")
        assert client.get(each)["attempts"] == 1  # none was started twice


def test_one_node_per_gpu_each_with_its_device_takes_the_runs_it_can_and_sigterm_stops_all(
    stack_env: dict[str, str], exits: ExitStack, tmp_path: Path
) -> None:
    """`memlab worker --gpus 0,1` with declared devices (no GPU here): two nodes, each
    seeing only its GPU; a run asking for a 40 GiB GPU trains on the H100's node only, one
    asking for 100 GiB waits saying why; a SIGTERM to the supervisor stops both."""
    import signal

    stack = Stack(tmp_path, stack_env, exits)
    stack.start_api()
    command = python_command(
        "-m", "client.cli", "worker", "--name", "pair", "--gpus", "0,1",
        "--devices", "H100:80,A10:24", "--queues", "gpu",
    )  # fmt: skip
    supervisor = exits.enter_context(running(command, stack_env, tmp_path / "pair.log"))
    client = exits.enter_context(MemlabClient(stack.url))
    nodes = wait_for(lambda: len(found := client.workers()) == 2 and found, 120, "two nodes")
    assert [node["name"].split("@")[0] for node in nodes] == ["pair-gpu0", "pair-gpu1"]
    assert [node["devices"][0]["name"] for node in nodes] == ["H100", "A10"]
    for gpu, node in enumerate(nodes):
        environ = Path(f"/proc/{node['pid']}/environ").read_bytes().split(b"\0")
        assert f"CUDA_VISIBLE_DEVICES={gpu}".encode() in environ

    spec = tiny_capacity_spec(train={"steps": 20, "eval_every": 10, "checkpoint_every": 10})
    big = client.submit(spec, resources={"gpus": 1, "gpu_memory_gib": 40})
    huge = client.submit(spec, resources={"gpus": 1, "gpu_memory_gib": 100})
    assert big["queue"] == "gpu"
    trained = wait_for(
        lambda: (run := client.get(big["id"]))["status"] in ("succeeded", "failed") and run,
        240,
        "the 40 GiB run to end",
    )
    assert trained["status"] == "succeeded", trained["error"]
    assert trained["dispatched_to"].startswith("pair-gpu0@")  # the H100's node, not the A10's
    assert trained["worker"].startswith(trained["dispatched_to"] + ":")
    waiting = client.get(huge["id"])
    assert waiting["status"] == "queued" and waiting["enqueued_at"] is None
    assert waiting["progress_message"] == (
        "waiting: no worker offers 1 GPU with at least 100 GiB on the gpu queue"
    )
    client.cancel(huge["id"])
    supervisor.send_signal(signal.SIGTERM)
    wait_for(lambda: supervisor.poll() is not None, 60, "both nodes to stop")
    assert all(node["stopped_at"] for node in client.workers(stopped=True))


def test_fair_dispatch_starts_a_colleagues_run_within_one_slot_turnover_of_a_flood(
    stack_env: dict[str, str], exits: ExitStack, tmp_path: Path, postgres_server_url: str
) -> None:
    """Fair dispatch, two API processes (two would-be dispatchers) and two workers
    of one slot each. Ada floods the queue with a 200-run sweep; the API process that
    dispatched first is SIGKILLed; then Bob submits one run through the other. Bob's run
    starts before more than one slot's worth of Ada's (2), and no run starts twice."""
    from store.db import make_session_factory
    from store.identity import create_user

    env = {**stack_env, "MEMLAB_AUTH": "on"}
    engine = make_engine(postgres_server_url)
    with make_session_factory(engine).begin() as session:
        keys = {name: create_user(session, name)[1].key for name in ("ada", "bob")}
    engine.dispose()
    first, second = Stack(tmp_path, env, exits), Stack(tmp_path / "second", env, exits)
    (tmp_path / "second").mkdir()
    first_api = first.start_api()
    second.start_api()
    for name in ("one", "two"):
        first.start_worker(name)
    # Ada submits through the API process that will be killed, and reads through the other.
    with MemlabClient(first.url, api_key=keys["ada"]) as through_first:
        body = {"base": tiny_capacity_spec(), "seeds": list(range(200)), "batch": False}
        flood = through_first.sweep(body)
    ada = exits.enter_context(MemlabClient(second.url, api_key=keys["ada"]))
    bob = exits.enter_context(MemlabClient(second.url, api_key=keys["bob"]))

    def adas_runs() -> list[dict[str, Any]]:
        return list(ada.list(sweep_id=flood["id"], limit=200)["items"])

    def handed_out_unfinished() -> int:
        return sum(r["enqueued_at"] is not None and r["status"] != "succeeded" for r in adas_runs())

    assert len(adas_runs()) == 200
    assert handed_out_unfinished() <= 2  # only as many as the free slots, never the flood
    wait_for(
        lambda: ada.list(sweep_id=flood["id"], status="succeeded")["total"] >= 2,
        120,
        "the flood to be under way",
    )
    assert handed_out_unfinished() <= 2
    kill_process_group(first_api)  # SIGKILL, mid-pass or not: the other dispatcher goes on
    mine = bob.submit(tiny_capacity_spec())
    final = wait_for(
        lambda: (got := bob.get(mine["id"]))["status"] in ("succeeded", "failed") and got,
        120,
        "bob's run to end",
    )
    assert final["status"] == "succeeded", final
    submitted, started = (
        datetime.fromisoformat(mine["created_at"]),
        datetime.fromisoformat(final["started_at"]),
    )
    overtaking = [
        run
        for run in adas_runs()
        if run["started_at"] and submitted < datetime.fromisoformat(run["started_at"]) < started
    ]
    assert len(overtaking) <= 2, [run["started_at"] for run in overtaking]
    ada.cancel_sweep(flood["id"])
    assert all(run["attempts"] <= 1 for run in adas_runs())
