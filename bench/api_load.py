"""API load benchmark on the shared-server stack (PostgreSQL + Redis + uvicorn + a worker).

Measures, against real processes it starts itself:
  1. single client: sequential POSTs of every kind's default spec (from GET /v1/kinds),
     kinds interleaved, no worker running: each kind's p50/p95 beside capacity_tradeoff's;
  2. N submissions from C concurrent clients: throughput, p50/p99 latency, lost, 5xx;
  3. dispatch latency, commit → `running`, on an idle worker (p50, p99);
  4. GET /v1/experiments over 10,000 rows with a filter (p50, p99).

    python bench/api_load.py                                  # defaults below
    python bench/api_load.py --submissions 2000 --concurrency 100
    python bench/api_load.py --arms single-client --stack embedded   # SQLite + file broker

PostgreSQL comes from MEMLAB_TEST_POSTGRES_URL (a scratch database is created and
dropped), Redis from MEMLAB_TEST_REDIS_URL (database 9 is flushed). `--stack embedded`
runs the API as `memlab serve` does, on SQLite and a file broker in a temporary folder,
without its worker.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import redis
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

from store.db import make_engine, migrate
from store.models import Run, RunStatus, RunTag, Sweep, SweepRun, utcnow

REPO = Path(__file__).resolve().parents[1]
ADMIN_URL = os.environ.get(
    "MEMLAB_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("MEMLAB_TEST_REDIS_URL", "redis://127.0.0.1:6379") + "/9"
TINY_SPEC = {
    "kind": "capacity_tradeoff",
    "train": {"steps": 5, "batch_size": 8, "warmup_steps": 0, "eval_every": 5, "device": "cpu"},
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@contextmanager
def scratch_database() -> Iterator[str]:
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"memlab_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        migrate(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def process(command: list[str], env: dict[str, str], log: Path) -> Iterator[None]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, cwd=REPO, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError("API did not become ready")


async def submissions(url: str, total: int, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    retries: list[int] = []
    statuses: list[int] = []
    ids: set[str] = set()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)

    async def client_loop(http: httpx.AsyncClient) -> None:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            started = time.perf_counter()
            # A careful client: an Idempotency-Key makes a retry after a dropped
            # connection safe (never a second experiment); retries are counted.
            for attempt in range(3):
                try:
                    response = await http.post(
                        "/v1/experiments",
                        json={"spec": {**TINY_SPEC, "seed": i}, "tags": ["load"]},
                        headers={"Idempotency-Key": f"load-{i}"},
                    )
                    break
                except httpx.TransportError:
                    retries.append(i)
                    if attempt == 2:
                        raise
            latencies.append(time.perf_counter() - started)
            statuses.append(response.status_code)
            if response.status_code == 201:
                ids.add(response.json()["id"])

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(http) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    stored = httpx.get(f"{url}/v1/experiments", params={"tag": "load", "limit": 1}).json()["total"]
    return {
        "throughput_per_s": total / elapsed,
        "p50_ms": 1000 * percentile(latencies, 0.50),
        "p99_ms": 1000 * percentile(latencies, 0.99),
        "server_errors": sum(s >= 500 for s in statuses),
        "lost": total - min(len(ids), stored),
        "distinct_ids": len(ids),
        "transport_retries": len(retries),
    }


REFERENCE_KIND = "capacity_tradeoff"  # the single-client arm's yardstick


def single_client_posts(url: str, requests: int, warmup: int) -> dict[str, list[float]]:
    """Each kind's POST latencies in seconds: one client, one request at a time, every
    kind's default spec (seed varied) in turn, so that all kinds meet the same server
    state; the first `warmup` rounds are not counted. The runs are cancelled afterwards."""
    created: list[str] = []
    with httpx.Client(base_url=url, timeout=120) as http:
        specs = {kind["name"]: kind["default_spec"] for kind in http.get("/v1/kinds").json()}
        timings: dict[str, list[float]] = {name: [] for name in specs}
        for round_index in range(warmup + requests):
            for name, spec in specs.items():
                body = {"spec": {**spec, "seed": round_index}, "tags": ["single-client"]}
                started = time.perf_counter()
                response = http.post("/v1/experiments", json=body)
                elapsed = time.perf_counter() - started
                if response.status_code != 201:
                    raise RuntimeError(
                        f"POST of {name}'s default spec answered {response.status_code}: "
                        f"{response.text[:500]}"
                    )
                created.append(response.json()["id"])
                if round_index >= warmup:
                    timings[name].append(elapsed)
        for run_id in created:  # queued with no worker: cancelled at once, never run
            http.post(f"/v1/experiments/{run_id}/cancel").raise_for_status()
    return timings


def single_client_report(timings: dict[str, list[float]]) -> list[str]:
    """A markdown table: p50 and p95 per kind, and p50 against capacity_tradeoff's."""
    reference = 1000 * statistics.median(timings[REFERENCE_KIND])
    lines = [
        f"| kind | p50 ms | p95 ms | p50 − {REFERENCE_KIND} ms | p50 / {REFERENCE_KIND} |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, values in timings.items():
        p50, p95 = 1000 * statistics.median(values), 1000 * percentile(values, 0.95)
        lines.append(
            f"| {name} | {p50:.1f} | {p95:.1f} | {p50 - reference:+.1f} | {p50 / reference:.2f} |"
        )
    return lines


def run_single_client_arm(url: str, requests: int, warmup: int, stack: str) -> None:
    timings = single_client_posts(url, requests, warmup)
    print(
        f"\n## single client, sequential POSTs of each kind's default spec, no worker "
        f"({stack} stack; {requests} per kind after {warmup} warm-up rounds)"
    )
    print("\n".join(single_client_report(timings)))


def api_command(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "api.app:create_app",
        "--factory",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]


@contextmanager
def embedded_api(logs: Path) -> Iterator[tuple[str, str]]:
    """The API alone on SQLite and a file broker in a temporary folder, as `memlab serve`
    runs it but with no worker (submitted runs stay queued); its URL and database URL."""
    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite:///{Path(tmp) / 'memlab.db'}"
        migrate(database_url)
        # Empty URLs are the embedded defaults, whatever the calling shell exports.
        env = {"MEMLAB_DATA_DIR": tmp, "MEMLAB_DATABASE_URL": "", "MEMLAB_BROKER_URL": ""}
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with process(api_command(port), env, logs / "api-embedded.log"):
            wait_ready(url)
            yield url, database_url


def print_machine() -> None:
    cores, python = os.cpu_count(), platform.python_version()
    print(f"machine: {platform.node()}, {cores} cores, Python {python}")


def dispatch_latency(url: str, runs: int) -> dict[str, float]:
    """Submit one tiny run at a time to an idle worker; commit → running, from DB timestamps."""
    delays = []
    with httpx.Client(base_url=url, timeout=60) as http:
        for seed in range(runs):
            run = http.post("/v1/experiments", json={"spec": {**TINY_SPEC, "seed": 10**6 + seed}})
            run_id = run.json()["id"]
            deadline = time.monotonic() + 60
            while True:
                record = http.get(f"/v1/experiments/{run_id}").json()
                if record["status"] in ("succeeded", "failed", "cancelled"):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"run {run_id} did not finish")
                time.sleep(0.05)
            created = datetime.fromisoformat(record["created_at"])
            delays.append((datetime.fromisoformat(record["started_at"]) - created).total_seconds())
    return {"p50_ms": 1000 * percentile(delays, 0.5), "p99_ms": 1000 * percentile(delays, 0.99)}


def seed_rows(database_url: str, rows: int) -> uuid.UUID:
    """Insert `rows` finished experiments directly: 1 in 10 tagged 'needle', 1 in 3 failed,
    all children of one sweep of 100 cells; returns the sweep's id."""
    engine = make_engine(database_url)
    now = utcnow()
    experiments, tags, children = [], [], []
    sweep_id = uuid.uuid4()
    for i in range(rows):
        experiment_id = uuid.uuid4()
        experiments.append(
            {
                "id": experiment_id,
                "kind": "capacity_tradeoff",
                "spec": TINY_SPEC,
                "spec_hash": f"{i:064x}",
                "name": None,
                "status": RunStatus.failed if i % 3 == 0 else RunStatus.succeeded,
                "queue": "cpu",
                "attempts": 1,
                "cancel_requested": False,
                "progress": 1.0,
                "created_at": now - timedelta(seconds=rows - i),
                "result": {"final": {"x": i}},
            }
        )
        if i % 10 == 0:
            tags.append({"run_id": experiment_id, "tag": "needle"})
        cell = {"model.n_embd": i % 100, "seed": i // 100}
        children.append(
            {"sweep_id": sweep_id, "run_id": experiment_id, "position": i, "cell": cell}
        )
    sweep = {
        "id": sweep_id,
        "kind": "capacity_tradeoff",
        "name": "bench",
        "tags": [],
        "request": {
            "base": TINY_SPEC,
            "axes": {"model.n_embd": list(range(100))},
            "seeds": [],
            "method": "grid",
            "samples": None,
            "sampler_seed": 0,
            "batch": True,
        },
        "n_runs": rows,
        "n_groups": 0,
        "cancel_requested": False,
        "created_at": now,
    }
    with engine.begin() as connection:
        connection.execute(insert(Run), experiments)
        connection.execute(insert(RunTag), tags)
        connection.execute(insert(Sweep), [sweep])
        connection.execute(insert(SweepRun), children)
        connection.execute(text("ANALYZE"))
    engine.dispose()
    return sweep_id


# The listings timed: plain filters, and the filter language on a JSON result field.
LISTINGS = (
    ("status=failed", {"status": "failed"}),
    ("tag=needle", {"tag": "needle"}),
    (
        "where=result.final.x < 5000 and status = succeeded",
        {"where": 'result.final.x < 5000 and status = "succeeded"'},
    ),
    ("sort=-result.final.x", {"sort": "-result.final.x"}),
)


def list_latency(url: str, requests: int, sweep_id: uuid.UUID) -> dict[str, float]:
    timings: dict[str, list[float]] = {name: [] for name, _ in LISTINGS}
    table = "sweep table (100 cells × 1,000 seeds)"
    timings[table] = []
    with httpx.Client(base_url=url, timeout=120) as http:
        for _ in range(max(1, requests // 10)):
            started = time.perf_counter()
            response = http.get(f"/v1/sweeps/{sweep_id}/table")
            timings[table].append(time.perf_counter() - started)
            assert response.status_code == 200, response.text[:500]
            assert len(response.json()["rows"]) == 100, len(response.json()["rows"])
        for _ in range(requests):
            for name, params in LISTINGS:
                started = time.perf_counter()
                response = http.get("/v1/experiments", params={**params, "limit": 50})
                timings[name].append(time.perf_counter() - started)
                assert response.status_code == 200
    return {f"{name} p50_ms": 1000 * statistics.median(t) for name, t in timings.items()} | {
        f"{name} p99_ms": 1000 * percentile(t, 0.99) for name, t in timings.items()
    }


def run_list_arm(url: str, database_url: str, rows: int, requests: int, stack: str) -> None:
    sweep_id = seed_rows(database_url, rows)
    listing = list_latency(url, requests, sweep_id)
    print(f"\n## {stack} stack: GET /v1/experiments, {rows:,} extra rows, filtered, limit 50")
    for key, value in listing.items():
        print(f"- {key}: {value:.1f}")


ARMS = ("single-client", "load", "dispatch", "list")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--arms", default=",".join(ARMS), help=f"Comma-separated, from: {', '.join(ARMS)}."
    )
    parser.add_argument(
        "--stack",
        choices=("shared", "embedded"),
        default="shared",
        help="shared: PostgreSQL + Redis; embedded: SQLite + file broker (single-client only).",
    )
    parser.add_argument("--single-client-requests", type=int, default=50, help="Per kind.")
    parser.add_argument("--single-client-warmup", type=int, default=3, help="Rounds not counted.")
    parser.add_argument("--submissions", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--dispatch-runs", type=int, default=30)
    parser.add_argument("--list-rows", type=int, default=10_000)
    parser.add_argument("--list-requests", type=int, default=100)
    parser.add_argument("--log-dir", default="/tmp/memlab-bench", help="API and worker logs.")
    args = parser.parse_args()
    arms = [arm.strip() for arm in args.arms.split(",") if arm.strip()]
    if unknown := set(arms) - set(ARMS):
        parser.error(f"unknown arms {sorted(unknown)}; choose from {', '.join(ARMS)}")
    if args.stack == "embedded" and not set(arms) <= {"single-client", "list"}:
        parser.error("--stack embedded runs only the single-client and list arms")

    logs = Path(args.log_dir)
    logs.mkdir(parents=True, exist_ok=True)
    if args.stack == "embedded":
        with embedded_api(logs) as (url, database_url):
            print_machine()
            if "single-client" in arms:
                run_single_client_arm(
                    url, args.single_client_requests, args.single_client_warmup, "embedded"
                )
            if "list" in arms:
                run_list_arm(url, database_url, args.list_rows, args.list_requests, "embedded")
        return

    redis.Redis.from_url(REDIS_URL).flushdb()
    with scratch_database() as database_url, tempfile.TemporaryDirectory() as tmp:
        env = {
            "MEMLAB_DATABASE_URL": database_url,
            "MEMLAB_BROKER_URL": REDIS_URL,
            "MEMLAB_DATA_DIR": tmp,
            "MEMLAB_TORCH_THREADS": "1",
        }
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with process(api_command(port), env, logs / "api.log"):
            wait_ready(url)
            print_machine()
            if "single-client" in arms:  # first, on a fresh server, before any worker runs
                run_single_client_arm(
                    url, args.single_client_requests, args.single_client_warmup, "shared"
                )
                redis.Redis.from_url(REDIS_URL).flushdb()  # the cancelled runs' messages
            if "load" in arms:
                load = asyncio.run(submissions(url, args.submissions, args.concurrency))
                print(f"\n## {args.submissions} submissions, {args.concurrency} concurrent clients")
                for key, value in load.items():
                    shown = f"{value:.1f}" if isinstance(value, float) else value
                    print(f"- {key}: {shown}")
                redis.Redis.from_url(REDIS_URL).flushdb()  # the load runs are not for the worker
                _cancel_queued(database_url)
            if "dispatch" in arms:
                worker = [sys.executable, "-m", "client.cli", "worker", "--name", "bench"]
                with process(worker, env, logs / "worker.log"):
                    time.sleep(3)  # let the worker connect before measuring
                    dispatch = dispatch_latency(url, args.dispatch_runs)
                print(
                    f"\n## dispatch latency, commit → running, idle worker "
                    f"({args.dispatch_runs} runs)"
                )
                for key, value in dispatch.items():
                    print(f"- {key}: {value:.1f}")
            if "list" in arms:
                run_list_arm(url, database_url, args.list_rows, args.list_requests, "shared")


def _cancel_queued(database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE runs SET status = 'cancelled' WHERE status = 'queued'"))
    engine.dispose()


if __name__ == "__main__":
    main()
