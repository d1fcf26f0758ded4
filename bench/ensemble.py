"""Batched ensemble vs sequential runs: K same-shape models trained both ways, side by side.

    python bench/ensemble.py                    # K = 32 width-32 models, 100 steps
    python bench/ensemble.py --members 8 --steps 50

Both arms train identical members (same seeds, data, optimizer) on the same machine in
one process; the ratio of wall times is the figure that matters on a noisy machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from core.data.text import CharVocab, LineStreamSampler
from core.models.sequence_model import SequenceModel, SequenceModelSpec
from core.reporter import InMemoryReporter
from core.specs import TrainSpec
from core.training.ensemble import Member, train_ensemble
from core.training.trainer import Trainer

LINES = [f"<{a}+{b}={a + b}>".ljust(8) + "\n" for a in range(10) for b in range(10)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=32)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--block-size", type=int, default=32)
    args = parser.parse_args()

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
        device="cpu",
    )
    members = [Member(seed=i, lr=3e-3) for i in range(args.members)]

    def sampler() -> LineStreamSampler:
        return LineStreamSampler(LINES, vocab, args.block_size, args.batch_size, passes=20, seed=0)

    def build() -> SequenceModel:
        return SequenceModel(model_spec, vocab.size, args.block_size)

    started = time.perf_counter()
    for member in members:
        torch.manual_seed(member.seed)
        Trainer(
            build(),
            train,
            sampler(),
            InMemoryReporter(),
            seed=member.seed,
            device=torch.device("cpu"),
        ).fit()
    sequential = time.perf_counter() - started

    started = time.perf_counter()
    train_ensemble(build, members, train, sampler(), torch.device("cpu"))
    batched = time.perf_counter() - started

    print(
        f"machine: {platform.node()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    shape = f"width {args.width}, batch {args.batch_size}, context {args.block_size}"
    print(f"{args.members} members × {args.steps} steps, {shape}")
    print(
        f"sequential: {sequential:.2f} s   batched ensemble: {batched:.2f} s   "
        f"speed-up: {sequential / batched:.2f}×"
    )


if __name__ == "__main__":
    main()
