"""LiRA's shadow models, batched against unbatched: the 16 shadows of one target trained
as one batched group (`core.training.group.run_group`, what a shadow sweep's group runs)
and one at a time (`run_prepared`, what a worker runs for an unbatched child), side by
side, then the LiRA scoring on the trained shadows.

    python bench/shadow.py                       # kg_memorization, 16 shadows, 300 steps
    python bench/shadow.py --kind associative_recall --shadows 8 --steps 200 --repeats 2
    python bench/shadow.py --device cuda

Both arms train the same shadow specs (same pool halves, seeds and optimizer), in one
process, alternating their order each round; the ratio of wall times within a round is
the figure to read on a noisy machine. The scoring step (the target and every shadow run
over the pool, Gaussians fitted, AUCs bootstrapped) is timed once, after training.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch

from core.catalog import build_target, get_kind
from core.probes.lira import LiraSpec
from core.probes.lira import run as run_lira
from core.probes.registry import ProbeInputs
from core.reporter import InMemoryReporter
from core.shadows import shadow_specs
from core.specs import TrainedSpec
from core.training.fit import run_prepared
from core.training.group import run_group

TARGETS: dict[str, dict[str, Any]] = {
    "kg_memorization": {"held_out_fraction": 0.5},
    "associative_recall": {"train_examples": 400, "test_examples": 400},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="kg_memorization", choices=sorted(TARGETS))
    parser.add_argument("--shadows", type=int, default=16)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=1, help="Rounds of both arms.")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = default")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    kind = get_kind(args.kind)
    target = kind.spec_class.model_validate(
        {
            "kind": args.kind,
            **TARGETS[args.kind],
            "train": {"steps": args.steps, "eval_every": args.steps, "device": args.device},
        }
    )
    assert isinstance(target, TrainedSpec)
    shadows = [s for s in shadow_specs(target, args.shadows, seed=0) if isinstance(s, TrainedSpec)]
    print(
        f"machine: {platform.node()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, device {args.device}"
    )
    print(
        f"{args.kind}: {args.shadows} shadows × {args.steps} steps, batch "
        f"{target.train.batch_size}, {target.parameter_count():,} parameters each"
    )
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        arms: dict[str, Callable[[Path], None]] = {
            "one at a time": lambda folder: _one_at_a_time(shadows, folder),
            "batched group": lambda folder: _batched(shadows, folder),
        }
        for round_index in range(args.repeats):
            order = list(arms) if round_index % 2 == 0 else list(reversed(arms))
            seconds = {}
            for name in order:
                folder = root / f"round{round_index}" / name.replace(" ", "_")
                seconds[name] = _timed(partial(arms[name], folder), args.device)
            line = "   ".join(f"{name}: {value:.1f} s" for name, value in seconds.items())
            ratio = seconds["one at a time"] / seconds["batched group"]
            print(f"round {round_index + 1}: {line}   batched speed-up: {ratio:.2f}×")
        folder = root / "round0" / "batched_group"
        _score(kind, target, shadows, folder, args.device)


def _reporters(folder: Path, count: int) -> list[InMemoryReporter]:
    return [InMemoryReporter(directory=folder / f"shadow{i}") for i in range(count)]


def _one_at_a_time(shadows: list[TrainedSpec], folder: Path) -> None:
    for spec, reporter in zip(shadows, _reporters(folder, len(shadows)), strict=True):
        prepare = get_kind(spec.kind).prepare
        assert prepare is not None
        run_prepared(spec, prepare(spec), reporter)


def _batched(shadows: list[TrainedSpec], folder: Path) -> None:
    outcomes = run_group(list(zip(shadows, _reporters(folder, len(shadows)), strict=True)))
    batched = sum(outcome.batched for outcome in outcomes)
    failed = [outcome.error for outcome in outcomes if outcome.error is not None]
    if failed or batched != len(shadows):
        raise RuntimeError(f"{batched} of {len(shadows)} batched; errors: {failed[:1]}")


def _score(
    kind: Any, target: TrainedSpec, shadows: list[TrainedSpec], folder: Path, device: str
) -> None:
    """LiRA on the batched arm's shadows, against the target's spec untrained (a control
    that must sit near AUC 0.5)."""
    torch_device = torch.device(device)
    reporters = _reporters(folder, len(shadows))  # the batched arm's folders, read back
    models = [
        build_target(spec, reporter.checkpoint_dir(), torch_device)
        for spec, reporter in zip(shadows, reporters, strict=True)
    ]
    built = kind.build(target)
    target_model = built.make_model().to(torch_device).eval()
    inputs = ProbeInputs(built.probe_target(target_model), {}, models)
    spec = LiraSpec(shadows=len(shadows), bootstrap_rounds=200)
    started = time.perf_counter()
    result = run_lira(spec, inputs, InMemoryReporter(directory=folder / "probe"))
    elapsed = time.perf_counter() - started
    print(
        f"scoring: {elapsed:.1f} s for {result['shadows']['pool_items']} pool items "
        f"(untrained target: LiRA AUC {result['attack']['auc']:.3f})"
    )


def _timed(run: Callable[[], None], device: str) -> float:
    """Wall seconds of `run()`, the device drained before and after."""
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    run()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
