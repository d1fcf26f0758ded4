"""Training-step time of each sequence mixer in the associative_recall default model.

Every arm is the same SequenceModel (2 layers, width 64, vocabulary 64, T=32, batch 64
by default) with a different mixer; one step = forward, backward and an AdamW update.
Arms run round-robin in one process, so their ratios hold on a noisy, shared machine;
the median step time of each arm is reported. An arm `mixer@form` forces a selective
mixer's scan form (core/models/mixers/scan.py): `s6@doubling` and `mamba2@doubling` run
the log₂T Hillis–Steele doubling scan over materialised (B, T, …, N) decays, memlab's
only scan before the fast forms, so before and after are measured side by side;
`@fast` forces the fast form where "auto" would pick another (S6 on CUDA).
With `--baseline REV`, arms `s6@REV` and `mamba2@REV` run the S6 and Mamba-2 modules as
they were at git revision REV (loaded from `git show` into a scratch package, given the
same weights as the current arm): a whole before/after comparison in one process.

    python bench/mixers.py
    python bench/mixers.py --seq-len 128 --width 128 --device cuda
    python bench/mixers.py --arms s6 s6@doubling --steps 20
    python bench/mixers.py --baseline f0b13ae --arms attention s6 s6@f0b13ae
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import get_args

import torch
from pydantic import TypeAdapter
from torch.nn import functional as F

from core.models.mixers import MixerSpec
from core.models.mixers.scan import ScanForm, SelectiveScanMixer
from core.models.sequence_model import SequenceModel, SequenceModelSpec

MIXERS: dict[str, dict[str, object]] = {
    "attention": {"type": "attention", "n_head": 2},
    "linear_attention": {"type": "linear_attention", "n_head": 2},
    "s4d": {"type": "s4d", "state_size": 16},
    "s6": {"type": "s6", "state_size": 16},
    "mamba2": {"type": "mamba2", "n_head": 2, "state_size": 16},
}
DEFAULT_ARMS = [*MIXERS, "s6@doubling", "mamba2@doubling"]


def load_baseline(rev: str) -> types.ModuleType:
    """The package core/models/mixers as it was at git revision `rev`, importable aside
    the current one (only its imports of itself are renamed)."""
    root = Path(tempfile.mkdtemp(prefix="memlab-bench-")) / "baseline_mixers"
    root.mkdir()
    listing = subprocess.run(
        ["git", "ls-tree", "--name-only", rev, "core/models/mixers/"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for path in listing:
        source = subprocess.run(
            ["git", "show", f"{rev}:{path}"], capture_output=True, text=True, check=True
        ).stdout
        (root / Path(path).name).write_text(source.replace("core.models.mixers", "baseline_mixers"))
    sys.path.insert(0, str(root.parent))
    return importlib.import_module("baseline_mixers")


def build_arm(
    arm: str, args: argparse.Namespace, device: torch.device, baseline: types.ModuleType | None
) -> SequenceModel:
    name, _, variant = arm.partition("@")
    mixer = TypeAdapter(MixerSpec).validate_python(MIXERS[name])
    spec = SequenceModelSpec(n_layer=args.layers, width=args.width, mixer=mixer)
    torch.manual_seed(0)
    model = SequenceModel(spec, args.vocab, args.seq_len).to(device)
    if baseline is not None and variant == args.baseline:
        old_spec = TypeAdapter(baseline.MixerSpec).validate_python(MIXERS[name])
        for block in model.blocks:
            old = baseline.build_mixer(old_spec, spec.layer_width).to(device)
            old.load_state_dict(block.mixer.state_dict())  # same weights as the current arm
            block.mixer = old
        return model
    if variant not in ("", *get_args(ScanForm)):
        raise SystemExit(f"unknown scan form {variant!r} (known: {get_args(ScanForm)})")
    for module in model.modules():
        if variant and isinstance(module, SelectiveScanMixer):
            module.scan = variant  # type: ignore[assignment]
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", nargs="+", default=DEFAULT_ARMS)
    parser.add_argument("--steps", type=int, default=10, help="Timed steps per arm.")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads.")
    parser.add_argument("--baseline", default=None, help="Git revision for `mixer@REV` arms.")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)

    baseline = load_baseline(args.baseline) if args.baseline else None
    models = {arm: build_arm(arm, args, device, baseline) for arm in args.arms}
    optimizers = {arm: torch.optim.AdamW(m.parameters(), lr=1e-3) for arm, m in models.items()}
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, args.vocab, (args.batch, args.seq_len + 1), generator=gen)
    inputs, targets = tokens[:, :-1].to(device), tokens[:, 1:].to(device)

    def step(arm: str) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        logits = models[arm](inputs)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        optimizers[arm].zero_grad(set_to_none=True)
        loss.backward()
        optimizers[arm].step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    with torch.no_grad():  # every form of a mixer must compute the same function
        for arm in args.arms:
            name = arm.partition("@")[0]
            if arm != name and name in models:
                gap = (models[arm](inputs) - models[name](inputs)).abs().max().item()
                print(f"# {arm} vs {name}: max |logit difference| {gap:.2e}")

    times: dict[str, list[float]] = {arm: [] for arm in args.arms}
    for index in range(args.warmup + args.steps):
        for arm in args.arms:  # round-robin: load spikes hit every arm alike
            elapsed = step(arm)
            if index >= args.warmup:
                times[arm].append(elapsed)

    cpu = platform.processor() or platform.machine()
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu
    print(
        f"# {where}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} cores; layers={args.layers} width={args.width} T={args.seq_len} "
        f"batch={args.batch} vocab={args.vocab}; median of {args.steps} steps"
    )
    print("| arm | ms / step (fwd+bwd+AdamW) | min ms | 2,000 steps (min) |")
    print("|---|---|---|---|")
    for arm, samples in times.items():
        median = statistics.median(samples)
        print(
            f"| {arm} | {1000 * median:.1f} | {1000 * min(samples):.1f} | "
            f"{2000 * median / 60:.1f} |"
        )


if __name__ == "__main__":
    main()
