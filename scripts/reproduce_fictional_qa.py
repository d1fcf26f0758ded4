"""Sweep `fictional_qa` over surface-form diversity, in-process, and print a Markdown table.

Five corpora with the same number of training renderings per event (4): terse fact
sheets (one, repeated), one document (repeated), four documents in one style, in two
styles, in four styles. The effects to look
for: verbatim memorization of training documents is high in every row while questions
about the same events (asked in a format never trained for them) are answered well only
with diverse documents; fact sheets give the worst fact accuracy off their own format.

    python scripts/reproduce_fictional_qa.py                          # CPU (2 cores: see docs)
    python scripts/reproduce_fictional_qa.py --size gpu --device cuda # larger, for one GPU
    python scripts/reproduce_fictional_qa.py --json results.json      # also keep the results
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from core.catalog import parse_spec
from core.experiments.fictional_qa import FictionalQASpec, run
from core.reporter import InMemoryReporter

CORPORA: dict[str, dict[str, Any]] = {
    "fact sheets": {"fact_sheets_only": True},
    "1 document x4": {"styles_per_event": 1, "documents_per_event": 1, "repeats": 4},
    "1 style": {"styles_per_event": 1},
    "2 styles": {"styles_per_event": 2},
    "4 styles": {"styles_per_event": 4},
}
# Spec fields per size; the CPU size is the kind's default spec.
SIZES: dict[str, dict[str, Any]] = {
    "cpu": {},
    "gpu": {
        "n_events": 200,
        "held_out_events": 20,
        "documents_per_event": 4,
        "model": {"n_layer": 4, "width": 256, "mixer": {"type": "attention", "n_head": 8}},
        "train": {"steps": 4000, "batch_size": 64, "lr": 1e-3, "min_lr": 1e-4},
    },
}
COLUMNS = (
    ("verbatim/training_documents", "verbatim train docs"),
    ("verbatim/held_out_document", "verbatim held-out doc"),
    ("qa/qa_trained", "QA (trained Qs)"),
    ("qa/seen_events", "QA seen events"),
    ("qa/held_out_events", "QA held-out events"),
    ("cloze/training_document", "cloze train doc"),
    ("cloze/held_out_document", "cloze held-out doc"),
    ("cloze/held_out_style", "cloze held-out style"),
)


def sweep_specs(
    size: str, device: str, seed: int, n_options: int, steps: int | None = None
) -> dict[str, FictionalQASpec]:
    base = SIZES[size]
    train = {**base.get("train", {}), "device": device}
    if steps is not None:
        train |= {"steps": steps, "warmup_steps": min(steps, 100), "eval_every": steps}
    specs = {}
    for name, corpus in CORPORA.items():
        raw = {
            "kind": "fictional_qa",
            "seed": seed,
            "n_options": n_options,
            **base,
            **corpus,
            "train": train,
        }
        specs[name] = parse_spec(raw)  # type: ignore[assignment]
    return specs


def table(results: dict[str, dict[str, Any]]) -> str:
    header = "| corpus | " + " | ".join(label for _, label in COLUMNS)
    header += " | QA seen, events all-verbatim (n) | minutes |"
    lines = [header, "|---" * (len(COLUMNS) + 3) + "|"]
    for name, result in results.items():
        final = result["final"]
        cells = [f"{final[key]:.2f}" if key in final else "—" for key, _ in COLUMNS]
        link = result["verbatim_vs_facts"]
        when = link["qa_when_all_verbatim"]
        linked = f"{when:.2f} ({link['events_all_verbatim']})" if when is not None else "— (0)"
        minutes = result["training"]["wall_seconds"] / 60
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {linked} | {minutes:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="cpu")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--options", type=int, choices=(4, 10), default=4)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's own)")
    parser.add_argument("--only", nargs="*", choices=sorted(CORPORA), help="a subset of rows")
    parser.add_argument("--steps", type=int, help="override train.steps (for a quick check)")
    parser.add_argument("--json", type=Path, help="write every result to this file")
    parser.add_argument(
        "--report", nargs="+", type=Path, help="only tabulate results saved with --json"
    )
    args = parser.parse_args()
    if args.report:
        saved = {n: r for path in args.report for n, r in json.loads(path.read_text()).items()}
        order = [name for name in CORPORA if name in saved] + sorted(set(saved) - set(CORPORA))
        print(table({name: saved[name] for name in order}))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    specs = sweep_specs(args.size, args.device, args.seed, args.options, args.steps)
    results: dict[str, dict[str, Any]] = {}
    for name, spec in specs.items():
        if args.only and name not in args.only:
            continue
        started = time.monotonic()
        results[name] = run(spec, InMemoryReporter())
        print(f"{name}: done in {time.monotonic() - started:.0f} s", flush=True)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
    print(f"\nchance {1 / args.options:.2f}; size {args.size}; device {args.device}; ", end="")
    print(f"torch threads {torch.get_num_threads()}\n")
    print(table(results))


if __name__ == "__main__":
    main()
