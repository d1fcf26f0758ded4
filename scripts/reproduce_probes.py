"""Reproduce the two probe figures of docs/reproductions.md, in-process, as Markdown tables.

secret-sharer: `capacity_tradeoff` (task facts) with 5-digit canaries (|R| = 10⁵) planted
    1, 10 and 100 times, never-inserted controls beside them; exposure by exact rank over
    all 10⁵ candidates and by the skew-normal extrapolation, after a few training epochs.
    Published (Carlini et al. 2019, character LSTM): ≈ 1.4 / 3.5 / 6.4 bits at 1 / 10 / 100.
knowledge-capacity: `capacity_tradeoff` on many fictional facts (each capital ≈ 16 bits
    under the generator), models n14/n28/n56 trained for 10, 100 and 1,000 exposures per
    fact; bits stored and bits per parameter. Published (Allen-Zhu & Li): ≈ 2 bits per
    parameter at 1,000 exposures, ≈ 1 at 100.

Each cell is the kind's own `run` followed by the probe's own `run`, so the numbers are
what a server reports for the same specs (submit them with `"probes": [...]` to check).

    python scripts/reproduce_probes.py secret-sharer --grid cpu
    python scripts/reproduce_probes.py knowledge-capacity --grid cpu
    python scripts/reproduce_probes.py all --grid gpu --device cuda
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from core.catalog import build_target, get_kind, get_probe, parse_probe_spec, parse_spec
from core.data.names import capital_entropy_bits
from core.experiments.capacity_tradeoff import CapacityTask
from core.probes.registry import ProbeInputs
from core.reporter import InMemoryReporter
from core.specs import ExperimentSpec

BLOCK = 24  # capacity_tradeoff's facts context
# Windows per step: the kind's default (576) for the capacity curve, where exposures are
# many; 64 for the canaries, so that a few epochs are still hundreds of optimizer steps.
CAPACITY_BATCH, SECRET_BATCH = 576, 64

GRIDS: dict[str, dict[str, Any]] = {
    "smoke": {"secret_facts": 100, "secret_epochs": (5,), "kc_facts": 200,
              "kc_sizes": ("n14",), "kc_exposures": (10,)},
    "cpu": {"secret_facts": 2000, "secret_epochs": (10, 30), "kc_facts": 500,
            "kc_sizes": ("n14", "n28", "n56"), "kc_exposures": (10, 100, 1000)},
    "gpu": {"secret_facts": 5000, "secret_epochs": (10, 30, 100), "kc_facts": 5000,
            "kc_sizes": ("n14", "n28", "n56"), "kc_exposures": (10, 100, 1000)},
}  # fmt: skip


def steps_for(spec_raw: dict[str, Any], passes: float, batch: int) -> int:
    """Optimizer steps that show the training text `passes` times (windows of BLOCK chars)."""
    corpus = sum(len(line) for line in CapacityTask.build(parse_spec(spec_raw)).training_lines)
    return max(1, math.ceil(passes * corpus / (batch * BLOCK)))


def facts_spec(
    n_facts: int, size: str, passes: float, device: str, batch: int, **extra: Any
) -> ExperimentSpec:
    base = {"kind": "capacity_tradeoff", "task": "facts", "size": size, "n_facts": n_facts, **extra}
    steps = steps_for(base, passes, batch)
    train = {
        "steps": steps,
        "batch_size": batch,
        "warmup_steps": min(2000, steps // 10),
        "decay_steps": steps,
        "eval_every": steps,
        "checkpoint_every": steps,
        "device": device,
    }
    return parse_spec({**base, "train": train})


def train_and_probe(spec: ExperimentSpec, probe: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """Train `spec`, run one probe on the final checkpoint; (probe result, wall seconds)."""
    started = time.perf_counter()
    reporter = InMemoryReporter()
    result = get_kind(spec.kind).run(spec, reporter)
    device = torch.device(result["device"])
    target = build_target(spec, reporter.checkpoint_dir(), device)
    probe_spec = parse_probe_spec(probe)
    measured = get_probe(probe_spec.kind).run(probe_spec, ProbeInputs(target, {}), reporter)
    return {
        **measured,
        "facts_accuracy": result["final"].get("facts"),
    }, time.perf_counter() - started


def secret_sharer(grid: dict[str, Any], device: str) -> list[dict[str, Any]]:
    canaries = {"length": 5, "insertions": [1, 10, 100], "per_insertion": 5, "controls": 5}
    rows = []
    for epochs in grid["secret_epochs"]:
        spec = facts_spec(
            grid["secret_facts"], "n56", epochs, device, SECRET_BATCH, canaries=canaries
        )
        measured, seconds = train_and_probe(spec, {"kind": "exposure", "max_candidates": 100_000})
        for row in measured["by_insertions"]:
            rows.append({"epochs": epochs, "steps": spec.train.steps, "seconds": seconds, **row})
        print(json.dumps(rows[-4:]), flush=True)
    return rows


def knowledge_capacity(grid: dict[str, Any], device: str) -> list[dict[str, Any]]:
    rows = []
    for size in grid["kc_sizes"]:
        for exposures in grid["kc_exposures"]:
            spec = facts_spec(grid["kc_facts"], size, exposures, device, CAPACITY_BATCH)
            measured, seconds = train_and_probe(spec, {"kind": "knowledge_capacity"})
            rows.append(
                {"size": size, "exposures": exposures, "steps": spec.train.steps,
                 "seconds": seconds, **measured}
            )  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    return rows


def secret_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| epochs | steps | insertions r | canaries | mean exposure (rank) | min–max "
        "| mean exposure (skew-normal) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['epochs']} | {r['steps']} | {r['insertions'] or 'control (0)'} | "
            f"{r['n_canaries']} | {r['mean_exposure']:.2f} | {r['min_exposure']:.2f}–"
            f"{r['max_exposure']:.2f} | {r['mean_exposure_extrapolated']:.2f} |"
        )
    return "\n".join(lines)


def capacity_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| model | parameters | exposures per fact | steps | facts recalled | bits stored "
        "| of the data's bits | bits / parameter | mapping bits | of the mapping's bits |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mapping, possible = r.get("mapping_bits"), r.get("mapping_data_bits")
        mapping_cells = (
            f"{mapping:,.0f} | {mapping / possible:.1%}" if mapping is not None else "— | —"
        )
        lines.append(
            f"| {r['size']} | {r['n_parameters']:,} | {r['exposures']} | {r['steps']} | "
            f"{r['facts_accuracy']:.3f} | {r['bits']:,.0f} | {r['fraction_of_data_bits']:.1%} | "
            f"{r['bits_per_parameter']:.3f} | {mapping_cells} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", choices=["secret-sharer", "knowledge-capacity", "all"])
    parser.add_argument("--grid", choices=sorted(GRIDS), default="cpu")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--sizes", nargs="+", help="knowledge-capacity: only these sizes.")
    parser.add_argument("--facts", type=int, help="knowledge-capacity: this many facts.")
    parser.add_argument(
        "--exposures", type=int, nargs="+", help="knowledge-capacity: these exposure counts."
    )
    parser.add_argument("--json", type=Path, help="Also write the rows here.")
    args = parser.parse_args()
    grid = dict(GRIDS[args.grid])
    if args.sizes:
        grid["kc_sizes"] = tuple(args.sizes)
    if args.facts:
        grid["kc_facts"] = args.facts
    if args.exposures:
        grid["kc_exposures"] = tuple(args.exposures)
    print(
        f"machine: {platform.node()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"device {args.device}"
        + (f" ({torch.cuda.get_device_name()})" if args.device == "cuda" else "")
        + f"; grid {args.grid}; capital entropy {capital_entropy_bits():.2f} bits"
    )
    output: dict[str, Any] = {}
    if args.study in ("secret-sharer", "all"):
        output["secret_sharer"] = secret_sharer(grid, args.device)
        print("\n" + secret_table(output["secret_sharer"]))
    if args.study in ("knowledge-capacity", "all"):
        output["knowledge_capacity"] = knowledge_capacity(grid, args.device)
        print("\n" + capacity_table(output["knowledge_capacity"]))
    if args.json:
        args.json.write_text(json.dumps(output, indent=2))


if __name__ == "__main__":
    main()
