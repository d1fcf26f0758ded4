"""Batched ensemble vs sequential runs: K same-shape models trained both ways, side by side.

    python bench/ensemble.py                    # K = 32 width-32 models, 100 steps
    python bench/ensemble.py --members 8 --steps 50 --repeats 3
    python bench/ensemble.py --device cuda

Both arms train identical members (same seeds, data, optimizer) on the same machine in
one process, alternating (sequential, batched, batched, sequential, ...) for `--repeats`
rounds; the ratio of wall times within a round is the figure that matters on a noisy
machine. `--vmap` adds a third arm, the generic vmap path, for comparison.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import torch

from core.data.text import CharVocab
from core.models.sequence_model import SequenceModel, SequenceModelSpec
from core.reporter import InMemoryReporter
from core.specs import TrainSpec
from core.training.ensemble import Member, batched_layers_apply, train_ensemble
from core.training.samplers import TokenStreamSampler
from core.training.trainer import Trainer

LINES = [f"<{a}+{b}={a + b}>".ljust(8) + "\n" for a in range(10) for b in range(10)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=32)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--block-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1, help="Rounds of every arm.")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = default")
    parser.add_argument("--vmap", action="store_true", help="Also time the generic vmap path.")
    parser.add_argument("--profile", action="store_true", help="Profile 5 steps of each arm.")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    vocab = CharVocab.from_texts(LINES)
    model_spec = SequenceModelSpec(
        n_layer=2, width=args.width, mixer={"type": "attention", "n_head": 2}
    )
    train = TrainSpec(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=3e-3,
        min_lr=3e-4,
        warmup_steps=10,
        eval_every=10**6,
        checkpoint_every=10**6,
        device=args.device,
    )
    members = [Member(seed=i, lr=train.lr, min_lr=train.min_lr) for i in range(args.members)]

    def sampler() -> TokenStreamSampler:
        return TokenStreamSampler.from_lines(
            LINES, vocab.encode, args.block_size, args.batch_size, passes=20, seed=0
        )

    def build() -> SequenceModel:
        return SequenceModel(model_spec, vocab.size, args.block_size)

    def sequential(spec: TrainSpec = train) -> None:
        for member in members:
            torch.manual_seed(member.seed)
            Trainer(
                build(), spec, sampler(), InMemoryReporter(), seed=member.seed, device=device
            ).fit()

    def batched(spec: TrainSpec = train, batched_layers: bool = True) -> None:
        train_ensemble(build, members, spec, sampler(), device, batched_layers=batched_layers)

    arms = {"sequential": sequential, "batched ensemble": batched}
    if args.vmap:
        arms["batched ensemble (vmap path)"] = lambda: batched(batched_layers=False)
    print(
        f"machine: {platform.node()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, device {device}"
    )
    shape = f"width {args.width}, batch {args.batch_size}, context {args.block_size}"
    path = "explicit batched layers" if batched_layers_apply(build()) else "vmap"
    print(f"{args.members} members × {args.steps} steps, {shape}; batched path: {path}")
    for round_index in range(args.repeats):
        order = list(arms) if round_index % 2 == 0 else list(reversed(arms))
        seconds = {name: timed(arms[name], device) for name in order}
        base = seconds["sequential"]
        line = "   ".join(f"{name}: {value:.2f} s" for name, value in seconds.items())
        ratios = ", ".join(
            f"{name} {base / value:.2f}×" for name, value in seconds.items() if name != "sequential"
        )
        print(f"round {round_index + 1}: {line}   speed-up: {ratios}")
    if args.profile:
        short = train.model_copy(update={"steps": 5, "warmup_steps": 5})
        profile_arm("sequential (32 Trainer runs of 5 steps)", lambda: sequential(short))
        profile_arm("batched ensemble (5 steps)", lambda: batched(short))


def timed(run: Callable[[], None], device: torch.device) -> float:
    """Wall seconds of `run()`, the device drained before and after."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def profile_arm(title: str, run: Callable[[], None]) -> None:
    """Where an arm spends its time, by operator (self time)."""
    from torch.profiler import profile

    with profile() as profiler:
        run()
    print(f"\n## {title}")
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
