"""Sweep `kg_memorization` over width, depth and FFN activation, in-process, as a Markdown table.

Three small studies on one synthetic graph ("Capacity Matters", Changalidis & Härmä 2025):
  1. width (1 layer, GELU): a wider embedding should memorize more and faster;
  2. depth with total width fixed (d = width / L): more layers should add little or hurt;
  3. activation × learning rate × seed: softmax should vary least across runs.
Each cell is the kind's own `run(spec, reporter)`, so the numbers are what a server
would report for the same specs.

    python scripts/reproduce_kg_memorization.py --jobs 2        # CPU grid, ≈10 min on 2 cores
    python scripts/reproduce_kg_memorization.py --device cuda --grid gpu --jobs 8   # ≈3 min
    python scripts/reproduce_kg_memorization.py --grid smoke    # seconds: checks the plumbing
    python scripts/reproduce_kg_memorization.py --json out.json   # keep every run's result
    python scripts/reproduce_kg_memorization.py --tables-from out.json   # tabulate again
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from core.catalog import parse_spec
from core.experiments.kg_memorization import run
from core.reporter import InMemoryReporter


@dataclass(frozen=True)
class Grid:
    """One sweep: the graph, the training length and the values each study varies."""

    n_concepts: int
    steps: int
    eval_every: int
    widths: tuple[int, ...]
    depth_width: int
    depths: tuple[int, ...]
    activation_width: int
    activations: tuple[str, ...]
    lrs: tuple[float, ...]
    seeds: tuple[int, ...]


GRIDS: dict[str, Grid] = {
    "smoke": Grid(60, 40, 20, (8, 16), 16, (1, 2), 8, ("gelu", "softmax"), (1e-3,), (0,)),
    "cpu": Grid(
        600, 800, 50, (8, 16, 32, 64), 64, (1, 2, 4), 32,
        ("relu", "gelu", "rrelu", "softmax"), (3e-3, 1e-2), (0, 1, 2),
    ),
    "gpu": Grid(
        3000, 3000, 100, (8, 16, 32, 64, 128), 128, (1, 2, 4, 8), 32,
        ("relu", "gelu", "rrelu", "softmax"), (1e-3, 3e-3, 1e-2), (0, 1, 2),
    ),
}  # fmt: skip


def spec_for(grid: Grid, device: str, *, width: int, n_layer: int, activation: str, lr: float,
             seed: int) -> dict[str, Any]:  # fmt: skip
    return {
        "kind": "kg_memorization",
        "seed": seed,
        "graph": {"n_concepts": grid.n_concepts},
        "model": {
            "width": width,
            "n_layer": n_layer,
            "activation": activation,
            "mixer": {"type": "attention", "n_head": 1},
        },
        "train": {
            "steps": grid.steps,
            "lr": lr,
            "min_lr": lr,
            "eval_every": grid.eval_every,
            "checkpoint_every": grid.steps,
            "device": device,
        },
    }


def run_cell(raw: dict[str, Any], threads: int) -> dict[str, Any]:
    """One spec through the kind's run(); in a worker process when --jobs > 1."""
    torch.set_num_threads(threads)
    started = time.monotonic()
    result = run(parse_spec(raw), InMemoryReporter())  # type: ignore[arg-type]
    result["seconds"] = round(time.monotonic() - started, 1)
    result["lr"], result["seed"] = raw["train"]["lr"], raw["seed"]
    result.pop("training")
    print(json.dumps(result), flush=True)
    return result


def cpu_name() -> str:
    """The CPU's model name (Linux), else the architecture, with the core count."""
    name = platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"{name}, {os.cpu_count()} cores"


def fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def width_table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| width | parameters | train acc | memorized / items | epochs to target | held-out acc |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['width']} | {r['n_parameters']:,} | {fmt(r['train_accuracy'])} | "
            f"{r['items_memorized']} / {r['train_items']} | {fmt(r['epochs_to_target'], 1)} | "
            f"{fmt(r['held_out_accuracy'])} |"
        )
    return "\n".join(lines)


def depth_table(results: list[dict[str, Any]], widths: list[dict[str, Any]]) -> str:
    """Depth at fixed total width, and beside it one layer of the same per-layer width (from
    the width study, where it ran) to separate "more layers" from "narrower layers"."""
    one_layer = {r["width"]: r for r in widths}
    lines = [
        "| layers × width | parameters | train acc | memorized / items | epochs to target "
        "| 1 layer × same width: memorized, epochs |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        same = one_layer.get(r["width"])
        beside = f"{same['items_memorized']}, {fmt(same['epochs_to_target'], 1)}" if same else "—"
        lines.append(
            f"| {r['n_layer']} × {r['width']} | {r['n_parameters']:,} | "
            f"{fmt(r['train_accuracy'])} | {r['items_memorized']} / {r['train_items']} | "
            f"{fmt(r['epochs_to_target'], 1)} | {beside if r['n_layer'] > 1 else ''} |"
        )
    return "\n".join(lines)


def activation_table(results: list[dict[str, Any]], lrs: tuple[float, ...]) -> str:
    """Per activation: final accuracy per lr (mean over seeds), and the spread over all runs."""
    header = " | ".join(f"acc @ lr {lr:g}" for lr in lrs)
    lines = [
        f"| activation | {header} | mean ± sd (all runs) | min–max | reached target "
        "| epochs to target (mean of those that did) |",
        "|---" * (len(lrs) + 5) + "|",
    ]
    for activation in dict.fromkeys(r["activation"] for r in results):
        runs = [r for r in results if r["activation"] == activation]
        per_lr = []
        for lr in lrs:
            accs = [r["train_accuracy"] for r in runs if r["lr"] == lr]
            per_lr.append(fmt(statistics.fmean(accs)) if accs else "—")
        accs = [r["train_accuracy"] for r in runs]
        sd = statistics.pstdev(accs) if len(accs) > 1 else 0.0
        epochs = [r["epochs_to_target"] for r in runs if r["epochs_to_target"] is not None]
        lines.append(
            f"| {activation} | {' | '.join(per_lr)} | {statistics.fmean(accs):.3f} ± {sd:.3f} | "
            f"{min(accs):.3f}–{max(accs):.3f} | {len(epochs)}/{len(runs)} | "
            f"{fmt(statistics.fmean(epochs) if epochs else None, 1)} |"
        )
    return "\n".join(lines)


def report(found: dict[str, Any]) -> str:
    """The three tables from a sweep's saved results (what --json writes)."""
    widths, depths, activations = found["width"], found["depth"], found["activation"]
    total = depths[0]["width"] * depths[0]["n_layer"]  # read off the results, not GRIDS
    lrs = tuple(dict.fromkeys(r["lr"] for r in activations))
    seeds = list(dict.fromkeys(r["seed"] for r in activations))
    return "\n".join(
        [
            found["header"],
            "",
            "Width (1 layer, GELU, lr 1e-3, seed 0)",
            "",
            width_table(widths),
            "",
            f"Depth at total width {total} (d = {total} / L)",
            "",
            depth_table(depths, widths),
            "",
            f"Activation (1 layer, width {activations[0]['width']}; seeds {seeds})",
            "",
            activation_table(activations, lrs),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--grid", choices=tuple(GRIDS), default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per run")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, in worker processes")
    parser.add_argument("--json", type=Path, help="also write every run's result here")
    parser.add_argument("--activation-width", type=int, help="override the grid's width there")
    parser.add_argument("--tables-from", type=Path, help="print the tables of a saved --json")
    args = parser.parse_args()
    if args.tables_from:
        print(report(json.loads(args.tables_from.read_text())))
        return
    grid = GRIDS[args.grid]
    if args.activation_width:
        grid = replace(grid, activation_width=args.activation_width)
    started = time.monotonic()

    base = {"activation": "gelu", "lr": 1e-3, "seed": 0}
    studies = {
        "width": [dict(width=w, n_layer=1, **base) for w in grid.widths],
        "depth": [dict(width=grid.depth_width, n_layer=n, **base) for n in grid.depths],
        "activation": [
            dict(width=grid.activation_width, n_layer=1, activation=a, lr=lr, seed=s)
            for a in grid.activations
            for lr in grid.lrs
            for s in grid.seeds
        ],
    }
    # A cell shared by two studies runs once.
    cells = {json.dumps(c, sort_keys=True): c for shapes in studies.values() for c in shapes}
    specs = [spec_for(grid, args.device, **shape) for shape in cells.values()]
    if args.jobs > 1:  # cells are independent; spawn keeps CUDA out of a forked parent
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
            outcomes = list(pool.map(run_cell, specs, [args.threads] * len(specs)))
    else:
        outcomes = [run_cell(spec, args.threads) for spec in specs]
    done = dict(zip(cells, outcomes, strict=True))
    found: dict[str, Any] = {
        name: [done[json.dumps(c, sort_keys=True)] for c in shapes]
        for name, shapes in studies.items()
    }
    device = torch.cuda.get_device_name() if args.device == "cuda" else cpu_name()
    first = found["width"][0]
    found["grid"] = args.grid
    found["header"] = (
        f"grid {args.grid} on {args.device} ({device}; {args.jobs} job(s) × {args.threads} "
        f"thread(s)): {first['train_items']} training triplets, {first['held_out_items']} "
        f"held out, {grid.steps} steps of batch 128, target accuracy "
        f"{first['target_accuracy']}; {time.monotonic() - started:.0f} s"
    )
    if args.json:
        args.json.write_text(json.dumps(found, indent=1))
    print("\n" + report(found))


if __name__ == "__main__":
    main()
