"""A 32-seed sweep through the real API and a real worker, batched and unbatched, side by
side in one run; and the same members trained by the engine alone, both ways.

    python bench/sweep.py                          # 32 seeds, embedded default (memlab serve)
    python bench/sweep.py --seeds 16 --steps 100 --repeats 2
    python bench/sweep.py --stack production       # PostgreSQL + Redis + a Celery worker

Each round runs four arms in alternating order on the same machine:
    service batched     POST /v1/sweeps (batch: true), wall time until the sweep ends
    service unbatched   the same sweep with batch: false (one child per task)
    engine batched      core.training.group.run_group on the same member specs
    engine sequential   each member's kind.run alone, one after another
and reports two ratios per round: service unbatched / batched, and engine sequential /
batched. Their difference is what the service adds: per-run overhead (claim, data
build, result and metric writes, broker latency) that the unbatched arm pays 32 times.
The last lines say, per arm, what the service adds over the engine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.api_load import REDIS_URL, free_port, process, scratch_database, wait_ready  # noqa: E402
from core.catalog import get_kind, parse_spec  # noqa: E402
from core.reporter import InMemoryReporter  # noqa: E402
from core.specs import TrainedSpec  # noqa: E402
from core.training.group import run_group  # noqa: E402


def base_spec(steps: int) -> dict[str, Any]:
    """A small capacity_tradeoff run: 20 facts, the paper's n14 decoder, batch 32."""
    return {
        "kind": "capacity_tradeoff",
        "task": "facts",
        "n_facts": 20,
        "train": {
            "steps": steps,
            "batch_size": 32,
            "eval_every": steps,
            "checkpoint_every": steps,
            "device": "cpu",
        },
    }


@contextmanager
def embedded_stack(data_dir: Path, env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "client.cli", "serve", "--port", str(port)]
    with process(command, {**env, "MEMLAB_DATA_DIR": str(data_dir)}, data_dir / "serve.log"):
        url = f"http://127.0.0.1:{port}"
        wait_ready(url)
        yield url


@contextmanager
def production_stack(data_dir: Path, env: dict[str, str]) -> Iterator[str]:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    with scratch_database() as database_url:
        stack_env = {
            **env,
            "MEMLAB_DATA_DIR": str(data_dir),
            "MEMLAB_DATABASE_URL": database_url,
            "MEMLAB_BROKER_URL": REDIS_URL,
        }
        port = free_port()
        api = [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory"]
        worker = [sys.executable, "-m", "client.cli", "worker", "--name", "bench"]
        with (
            process([*api, "--port", str(port)], stack_env, data_dir / "api.log"),
            process(worker, stack_env, data_dir / "worker.log"),
        ):
            url = f"http://127.0.0.1:{port}"
            wait_ready(url)
            yield url


def service_arm(url: str, base: dict[str, Any], seeds: int, batch: bool) -> float:
    """Seconds from POST /v1/sweeps to the sweep's end; every child must succeed."""
    body = {"base": base, "seeds": seeds, "batch": batch, "name": f"bench batch={batch}"}
    with httpx.Client(base_url=url, timeout=60) as http:
        started = time.perf_counter()
        response = http.post("/v1/sweeps", json=body)
        response.raise_for_status()
        sweep_id = response.json()["id"]
        while True:
            sweep = http.get(f"/v1/sweeps/{sweep_id}").json()
            if sweep["status"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
    if sweep["status"] != "succeeded":
        raise RuntimeError(f"the sweep ended {sweep['status']}: {sweep['counts']}")
    if batch and sweep["n_groups"] == 0:
        raise RuntimeError("the batched sweep made no group: nothing was batched")
    return elapsed


def member_specs(base: dict[str, Any], seeds: int) -> list[TrainedSpec]:
    kind = get_kind(base["kind"])
    specs = [kind.spec_class.model_validate({**base, "seed": seed}) for seed in range(seeds)]
    assert all(isinstance(spec, TrainedSpec) for spec in specs)
    return [spec for spec in specs if isinstance(spec, TrainedSpec)]


def engine_batched(specs: list[TrainedSpec]) -> float:
    started = time.perf_counter()
    outcomes = run_group([(spec, InMemoryReporter()) for spec in specs])
    elapsed = time.perf_counter() - started
    if not all(o.error is None and o.batched for o in outcomes):
        raise RuntimeError("a member did not train batched")
    return elapsed


def engine_sequential(specs: list[TrainedSpec]) -> float:
    started = time.perf_counter()
    for spec in specs:
        get_kind(spec.kind).run(spec, InMemoryReporter())
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=32)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--stack", choices=["embedded", "production"], default="embedded")
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="Also write the rounds here.")
    args = parser.parse_args()

    torch.set_num_threads(args.torch_threads)
    env = {"MEMLAB_TORCH_THREADS": str(args.torch_threads), "MEMLAB_METRICS_FLUSH_INTERVAL_S": "2"}
    base = base_spec(args.steps)
    specs = member_specs(base, args.seeds)
    parse_spec(specs[0].model_dump(mode="json"))  # warm the kind registry before timing
    stack = embedded_stack if args.stack == "embedded" else production_stack
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__}, {args.torch_threads} torch thread(s); {args.stack} stack; "
        f"{args.seeds} seeds × {args.steps} steps of capacity_tradeoff (facts, n14)"
    )
    rounds = []
    with (
        tempfile.TemporaryDirectory(prefix="memlab-bench-sweep-") as tmp,
        stack(Path(tmp), env) as url,
    ):
        service_arm(url, base_spec(5), 2, batch=True)  # warm the worker (imports, first build)
        for index in range(args.repeats):
            order = [True, False] if index % 2 == 0 else [False, True]
            times: dict[str, float] = {}
            for batch in order:
                times["service batched" if batch else "service unbatched"] = service_arm(
                    url, base, args.seeds, batch
                )
            for batched in order:
                name = "engine batched" if batched else "engine sequential"
                times[name] = (engine_batched if batched else engine_sequential)(specs)
            rounds.append(times)
            print(
                f"round {index + 1}: "
                + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in times.items())
                + f"; service ×{times['service unbatched'] / times['service batched']:.2f}, "
                f"engine ×{times['engine sequential'] / times['engine batched']:.2f}"
            )
    service = [r["service unbatched"] / r["service batched"] for r in rounds]
    engine = [r["engine sequential"] / r["engine batched"] for r in rounds]
    print(f"service ratio (unbatched / batched): median ×{statistics.median(service):.2f}")
    print(f"engine ratio (sequential / batched): median ×{statistics.median(engine):.2f}")
    for arm, engine_arm in (("batched", "batched"), ("unbatched", "sequential")):
        added = statistics.median(r[f"service {arm}"] - r[f"engine {engine_arm}"] for r in rounds)
        print(f"the service adds {added:.1f} s to the {arm} sweep over the engine alone")
    if args.json:
        args.json.write_text(json.dumps(rounds, indent=2))


if __name__ == "__main__":
    main()
