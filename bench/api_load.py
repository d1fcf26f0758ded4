"""API load benchmark on the shared-server stack (PostgreSQL + Redis + uvicorn + a worker).

Measures, against real processes it starts itself:
  1. single client: sequential POSTs of every kind's default spec (from GET /v1/kinds),
     kinds interleaved, no worker running: each kind's p50/p95 beside capacity_tradeoff's;
  2. N submissions from C concurrent clients: throughput, p50/p99 latency, lost, 5xx;
  3. dispatch latency, commit → `running`, on an idle worker (p50, p99);
  4. GET /v1/experiments over 10,000 rows with a filter (p50, p99);
  5. `auth` (not in the default run): authentication's cost. Arm 2's workload against
     two API servers on one database, MEMLAB_AUTH=off and MEMLAB_AUTH=on (a user made
     with store.identity.create_user, its key sent as `Authorization: Bearer`), both
     with MEMLAB_RATE_LIMIT_PER_MINUTE=0; a warm-up per server, then rounds alternating
     the two, the order swapped each round. Per server: median throughput, p50/p99,
     non-2xx, and CPU milliseconds per submission of the API process and of PostgreSQL
     (from /proc); the throughput ratio on/off with its min–max over the rounds. It
     exits non-zero if any submission answered non-2xx or was lost.

    python bench/api_load.py                                  # arms 1-4, defaults below
    python bench/api_load.py --submissions 2000 --concurrency 100
    python bench/api_load.py --arms single-client --stack embedded   # SQLite + file broker
    python bench/api_load.py --arms auth --auth-rounds 5 --submissions 500

Flags:
  --arms A,B              from single-client, load, dispatch, list, auth (default all but auth)
  --stack shared|embedded embedded: single-client, list and auth only
  --submissions N         per measurement, load and auth arms (1000)
  --concurrency C         concurrent clients, load and auth arms (50)
  --auth-rounds R         measurements per server in the auth arm (5)
  --auth-warmup W         submissions per server before the auth arm's rounds (100)
  --single-client-requests, --single-client-warmup, --dispatch-runs, --list-rows,
  --list-requests         the other arms' sizes; --log-dir: the servers' logs

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
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import redis
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

from store import identity
from store.db import make_engine, make_session_factory, migrate, transaction
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
def process(
    command: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, cwd=REPO, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            yield proc
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


async def submissions(
    url: str,
    total: int,
    concurrency: int,
    headers: Mapping[str, str] | None = None,
    label: str = "load",
) -> dict[str, float]:
    """`total` POSTs of TINY_SPEC (seeds 0, 1, …) from `concurrency` clients sending
    `headers`; `label` tags the runs and prefixes their idempotency keys, so that a
    repeated measurement on the same database submits new runs instead of replaying."""
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
                        json={"spec": {**TINY_SPEC, "seed": i}, "tags": [label]},
                        headers={"Idempotency-Key": f"{label}-{i}"},
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
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits, headers=headers) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(http) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        listing = await http.get("/v1/experiments", params={"tag": label, "limit": 1})
    stored = listing.json()["total"]
    return {
        "throughput_per_s": total / elapsed,
        "p50_ms": 1000 * percentile(latencies, 0.50),
        "p99_ms": 1000 * percentile(latencies, 0.99),
        "server_errors": sum(s >= 500 for s in statuses),
        "non_2xx": sum(not 200 <= s < 300 for s in statuses),
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
def embedded_state() -> Iterator[tuple[dict[str, str], str]]:
    """A temporary folder holding the embedded stack's SQLite database (migrated) and file
    broker: the API's environment for it, and the database URL."""
    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite:///{Path(tmp) / 'memlab.db'}"
        migrate(database_url)
        # Empty URLs are the embedded defaults, whatever the calling shell exports.
        env = {"MEMLAB_DATA_DIR": tmp, "MEMLAB_DATABASE_URL": "", "MEMLAB_BROKER_URL": ""}
        yield env, database_url


@contextmanager
def api_server(env: dict[str, str], log: Path, pids: list[int] | None = None) -> Iterator[str]:
    """An API process with `env` on a free port, once it answers /readyz; its URL (and
    its pid appended to `pids`, when given)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with process(api_command(port), env, log) as proc:
        wait_ready(url)
        if pids is not None:
            pids.append(proc.pid)
        yield url


def database_cpu_seconds() -> float:
    """CPU time used so far by every PostgreSQL process of this machine (0 without one)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended meanwhile
            continue
        if "(postgres)" in text:
            total += cpu_seconds(int(stat.parent.name), text)
    return total


def cpu_seconds(pid: int, stat: str | None = None) -> float:
    """User + system CPU time the process has used so far (Linux /proc)."""
    stat = stat if stat is not None else Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def embedded_api(logs: Path) -> Iterator[tuple[str, str]]:
    """The API alone on SQLite and a file broker in a temporary folder, as `memlab serve`
    runs it but with no worker (submitted runs stay queued); its URL and database URL."""
    with embedded_state() as (env, database_url), api_server(env, logs / "api-embedded.log") as url:
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


# The auth arm: the load arm's workload against two API servers on one stack that differ
# only in MEMLAB_AUTH, measured in alternating rounds.
AUTH_MODES = ("off", "on")
BENCH_USER = "bench"


@dataclass(frozen=True)
class AuthArmServer:
    """One of the auth arm's API servers: its MEMLAB_AUTH, URL, request headers and pid."""

    mode: str
    url: str
    headers: dict[str, str]
    pid: int


def create_bench_user(database_url: str) -> str:
    """The user `bench`, made as `memlab users add bench` makes it (a personal project it
    maintains, a first key), in the bench's database; its API key."""
    engine = make_engine(database_url)
    try:
        with transaction(make_session_factory(engine)) as session:
            _, issued = identity.create_user(session, BENCH_USER)
    finally:
        engine.dispose()
    return issued.key


@contextmanager
def auth_arm_servers(
    env: dict[str, str], database_url: str, logs: Path
) -> Iterator[list[AuthArmServer]]:
    """The auth arm's two servers, MEMLAB_AUTH off and on, up together for the whole arm.

    Both use the one database and broker of `env` rather than one each: they then read
    the same tables, indexes and PostgreSQL cache, and since the rounds alternate, each
    measurement meets a table grown by the same submissions whichever server made them.
    Queued runs are cancelled between measurements, as the load arm does.
    """
    key = create_bench_user(database_url)
    # No rate limit on either server: a per-minute cap would bound the throughput measured
    # (the settings ignore the variable on a server that does not know it).
    shared = {**env, "MEMLAB_RATE_LIMIT_PER_MINUTE": "0"}
    with ExitStack() as running:
        servers = []
        for mode in AUTH_MODES:
            server_env = {**shared, "MEMLAB_AUTH": mode}
            pids: list[int] = []
            log = logs / f"api-auth-{mode}.log"
            url = running.enter_context(api_server(server_env, log, pids))
            headers = {"Authorization": f"Bearer {key}"} if mode == "on" else {}
            servers.append(AuthArmServer(mode, url, headers, pids[0]))
        check_auth_modes(servers)
        yield servers


def check_auth_modes(servers: list[AuthArmServer]) -> None:
    """Refuse to measure unless the `on` server turns away a request without a key and
    takes one with it, and the `off` server takes one without: else the arms are alike."""
    for server in servers:
        bare = httpx.get(f"{server.url}/v1/experiments", params={"limit": 1}).status_code
        keyed = httpx.get(
            f"{server.url}/v1/experiments", params={"limit": 1}, headers=server.headers
        ).status_code
        expected_bare = 401 if server.mode == "on" else 200
        if (bare, keyed) != (expected_bare, 200):
            raise RuntimeError(
                f"the MEMLAB_AUTH={server.mode} server answered {bare} without a key and "
                f"{keyed} with the bench key (expected {expected_bare} and 200)"
            )


@dataclass(frozen=True)
class AuthRound:
    """One round of the auth arm: which server went first, and each server's load figures."""

    first: str
    figures: dict[str, dict[str, float]]  # MEMLAB_AUTH → submissions()'s figures

    def ratio(self) -> float:
        """Throughput with authentication over without, in this round."""
        return self.figures["on"]["throughput_per_s"] / self.figures["off"]["throughput_per_s"]


def measure_auth_rounds(
    servers: list[AuthArmServer],
    rounds: int,
    total: int,
    concurrency: int,
    warmup: int,
    reset: Callable[[], None],
) -> list[AuthRound]:
    """Both servers in every round, the order swapped from one round to the next, so that
    a drift in the machine's load meets both alike; first `warmup` submissions to each,
    not counted (connection pools, first-request imports). `reset` runs after each."""
    if warmup:
        for server in servers:
            asyncio.run(
                submissions(
                    server.url, warmup, concurrency, server.headers, f"warmup-{server.mode}"
                )
            )
            reset()
    measured = []
    for index in range(rounds):
        order = servers if index % 2 == 0 else servers[::-1]
        figures = {}
        for server in order:
            label = f"auth-{server.mode}-{index}"
            api_before, database_before = cpu_seconds(server.pid), database_cpu_seconds()
            figures[server.mode] = asyncio.run(
                submissions(server.url, total, concurrency, server.headers, label)
            )
            # CPU per submission: the API process's own, and the database server's (only
            # one server is submitting at a time, so the database's time is this one's).
            figures[server.mode]["api_cpu_ms"] = (
                (cpu_seconds(server.pid) - api_before) * 1e3 / total
            )
            figures[server.mode]["database_cpu_ms"] = (
                (database_cpu_seconds() - database_before) * 1e3 / total
            )
            reset()
        measured.append(AuthRound(order[0].mode, figures))
    return measured


def auth_server_row(mode: str, figures: list[dict[str, float]]) -> str:
    """One server's table row: medians over its rounds, failures summed over them."""

    def median_of(key: str) -> float:
        return statistics.median(one[key] for one in figures)

    def sum_of(key: str) -> int:
        return round(sum(one[key] for one in figures))

    rates = [one["throughput_per_s"] for one in figures]
    return (
        f"| {mode} | {median_of('throughput_per_s'):.1f} ({min(rates):.1f}–{max(rates):.1f}) "
        f"| {median_of('p50_ms'):.1f} | {median_of('p99_ms'):.1f} | {sum_of('non_2xx')} "
        f"| {sum_of('server_errors')} | {sum_of('lost')} | {sum_of('transport_retries')} |"
    )


def auth_report(measured: list[AuthRound]) -> list[str]:
    """Markdown: each round's throughputs and ratio, then each server's medians over the
    rounds and its failures summed, then the ratio and the cost with their spread."""
    lines = ["| round | first | off /s | on /s | on / off |", "|---|---|---:|---:|---:|"]
    for index, one in enumerate(measured, 1):
        off, on = (one.figures[mode]["throughput_per_s"] for mode in AUTH_MODES)
        lines.append(f"| {index} | {one.first} | {off:.1f} | {on:.1f} | {one.ratio():.3f} |")
    lines += [
        "",
        "| MEMLAB_AUTH | throughput /s, median (min–max) | p50 ms | p99 ms "
        "| non-2xx | 5xx | lost | retries |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [auth_server_row(mode, [one.figures[mode] for one in measured]) for mode in AUTH_MODES]
    lines += ["", *cpu_report(measured)]
    ratios = [one.ratio() for one in measured]
    ratio = statistics.median(ratios)
    lines += [
        "",
        f"- on / off throughput, median of the rounds' ratios: {ratio:.3f} "
        f"(min–max over {len(ratios)} rounds: {min(ratios):.3f}–{max(ratios):.3f})",
        f"- authentication's cost in submission throughput: {1 - ratio:.1%} "
        f"(over the rounds: {1 - max(ratios):.1%} to {1 - min(ratios):.1%}; 95% bootstrap "
        f"interval of the median: {1 - median_interval(ratios)[1]:.1%} to "
        f"{1 - median_interval(ratios)[0]:.1%})",
        "- p50 and p99 are the medians of the rounds' own percentiles",
    ]
    return lines


def median_interval(values: list[float], resamples: int = 2000) -> tuple[float, float]:
    """A 95% percentile-bootstrap interval of the median of `values` (seeded: the same
    rounds give the same interval)."""
    draw = random.Random(0)
    medians = sorted(
        statistics.median(draw.choices(values, k=len(values))) for _ in range(resamples)
    )
    return medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]


def cpu_report(measured: list[AuthRound]) -> list[str]:
    """Markdown: CPU milliseconds per submission of the API process and of PostgreSQL,
    medians over the rounds, and what authentication adds to their sum."""
    lines = [
        "| MEMLAB_AUTH | API CPU ms / submission | PostgreSQL CPU ms / submission | sum |",
        "|---|---:|---:|---:|",
    ]
    sums = {}
    for mode in AUTH_MODES:
        api = statistics.median(one.figures[mode]["api_cpu_ms"] for one in measured)
        database = statistics.median(one.figures[mode]["database_cpu_ms"] for one in measured)
        sums[mode] = api + database
        lines.append(f"| {mode} | {api:.2f} | {database:.2f} | {api + database:.2f} |")
    added = sums["on"] / sums["off"] - 1
    lines += ["", f"- CPU per submission, API + PostgreSQL, on over off: +{added:.1%}"]
    return lines


def run_auth_arm(
    env: dict[str, str],
    database_url: str,
    reset: Callable[[], None],
    args: argparse.Namespace,
    logs: Path,
) -> None:
    """Measure and print the auth arm; exit non-zero if any submission failed or was lost,
    since the two servers would then not have done the same work."""
    with auth_arm_servers(env, database_url, logs) as servers:
        measured = measure_auth_rounds(
            servers,
            args.auth_rounds,
            args.submissions,
            args.concurrency,
            args.auth_warmup,
            reset,
        )
    print(
        f"\n## authentication's cost: {args.submissions} submissions, {args.concurrency} "
        f"concurrent clients, {args.auth_rounds} rounds per server, alternating "
        f"({args.stack} stack, {args.auth_warmup} warm-up submissions per server)"
    )
    print("\n".join(auth_report(measured)))
    failed = sum(
        one.figures[mode]["non_2xx"] + one.figures[mode]["lost"]
        for one in measured
        for mode in AUTH_MODES
    )
    if failed:
        sys.exit(f"{failed:.0f} submissions answered non-2xx or were lost: see the table")


DEFAULT_ARMS = ("single-client", "load", "dispatch", "list")
# Not run by default: the default run is issue 3's, recorded in docs/performance.md, and
# this arm starts two more servers and submits 2 × rounds times the load arm's count.
ARMS = (*DEFAULT_ARMS, "auth")
EMBEDDED_ARMS = ("single-client", "list", "auth")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--arms",
        default=",".join(DEFAULT_ARMS),
        help=f"Comma-separated, from: {', '.join(ARMS)} (default: all but auth).",
    )
    parser.add_argument(
        "--stack",
        choices=("shared", "embedded"),
        default="shared",
        help="shared: PostgreSQL + Redis; embedded: SQLite + file broker "
        f"({', '.join(EMBEDDED_ARMS)} only).",
    )
    parser.add_argument("--single-client-requests", type=int, default=50, help="Per kind.")
    parser.add_argument("--single-client-warmup", type=int, default=3, help="Rounds not counted.")
    parser.add_argument("--submissions", type=int, default=1000, help="Load and auth arms.")
    parser.add_argument("--concurrency", type=int, default=50, help="Load and auth arms.")
    parser.add_argument("--auth-rounds", type=int, default=5, help="Measurements per server.")
    parser.add_argument(
        "--auth-warmup", type=int, default=100, help="Submissions per server, not counted."
    )
    parser.add_argument("--dispatch-runs", type=int, default=30)
    parser.add_argument("--list-rows", type=int, default=10_000)
    parser.add_argument("--list-requests", type=int, default=100)
    parser.add_argument("--log-dir", default="/tmp/memlab-bench", help="API and worker logs.")
    args = parser.parse_args()
    arms = [arm.strip() for arm in args.arms.split(",") if arm.strip()]
    if unknown := set(arms) - set(ARMS):
        parser.error(f"unknown arms {sorted(unknown)}; choose from {', '.join(ARMS)}")
    if args.stack == "embedded" and not set(arms) <= set(EMBEDDED_ARMS):
        parser.error(f"--stack embedded runs only the {', '.join(EMBEDDED_ARMS)} arms")
    if args.auth_rounds < 1 or args.submissions < 1 or args.concurrency < 1:
        parser.error("--auth-rounds, --submissions and --concurrency must be at least 1")

    logs = Path(args.log_dir)
    logs.mkdir(parents=True, exist_ok=True)
    print_machine()
    if args.stack == "embedded":
        run_embedded(arms, args, logs)
    else:
        run_shared(arms, args, logs)


def run_embedded(arms: list[str], args: argparse.Namespace, logs: Path) -> None:
    """The arms asked for on SQLite and the file broker, each in a temporary folder."""
    if set(arms) & {"single-client", "list"}:
        with embedded_api(logs) as (url, database_url):
            if "single-client" in arms:
                run_single_client_arm(
                    url, args.single_client_requests, args.single_client_warmup, "embedded"
                )
            if "list" in arms:
                run_list_arm(url, database_url, args.list_rows, args.list_requests, "embedded")
    if "auth" in arms:  # a database of its own, so the list arm's rows do not weigh on it
        with embedded_state() as (env, database_url):
            run_auth_arm(env, database_url, lambda: _cancel_queued(database_url), args, logs)


@contextmanager
def shared_state() -> Iterator[tuple[dict[str, str], str]]:
    """A scratch PostgreSQL database (migrated), Redis database 9 flushed and a temporary
    data folder: the API's and the worker's environment for them, and the database URL."""
    redis.Redis.from_url(REDIS_URL).flushdb()
    with scratch_database() as database_url, tempfile.TemporaryDirectory() as tmp:
        env = {
            "MEMLAB_DATABASE_URL": database_url,
            "MEMLAB_BROKER_URL": REDIS_URL,
            "MEMLAB_DATA_DIR": tmp,
            "MEMLAB_TORCH_THREADS": "1",
        }
        yield env, database_url


def clear_submissions(database_url: str) -> None:
    """Drop what a load measurement leaves: its messages (the load runs are not for a
    worker) and its queued runs, cancelled."""
    redis.Redis.from_url(REDIS_URL).flushdb()
    _cancel_queued(database_url)


def run_shared(arms: list[str], args: argparse.Namespace, logs: Path) -> None:
    """The arms asked for on PostgreSQL and Redis."""
    if set(arms) - {"auth"}:
        with shared_state() as (env, database_url), api_server(env, logs / "api.log") as url:
            run_shared_arms(arms, args, url, env, database_url, logs)
    if "auth" in arms:  # a database of its own, so the other arms' rows do not weigh on it
        with shared_state() as (env, database_url):
            run_auth_arm(env, database_url, lambda: clear_submissions(database_url), args, logs)


def run_shared_arms(
    arms: list[str],
    args: argparse.Namespace,
    url: str,
    env: dict[str, str],
    database_url: str,
    logs: Path,
) -> None:
    """Arms 1-4 against one API server at `url`, in that order."""
    if "single-client" in arms:  # first, on a fresh server, before any worker runs
        run_single_client_arm(url, args.single_client_requests, args.single_client_warmup, "shared")
        redis.Redis.from_url(REDIS_URL).flushdb()  # the cancelled runs' messages
    if "load" in arms:
        load = asyncio.run(submissions(url, args.submissions, args.concurrency))
        print(f"\n## {args.submissions} submissions, {args.concurrency} concurrent clients")
        for key, value in load.items():
            shown = f"{value:.1f}" if isinstance(value, float) else value
            print(f"- {key}: {shown}")
        clear_submissions(database_url)
    if "dispatch" in arms:
        worker = [sys.executable, "-m", "client.cli", "worker", "--name", "bench"]
        with process(worker, env, logs / "worker.log"):
            time.sleep(3)  # let the worker connect before measuring
            dispatch = dispatch_latency(url, args.dispatch_runs)
        print(f"\n## dispatch latency, commit → running, idle worker ({args.dispatch_runs} runs)")
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
