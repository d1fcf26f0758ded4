"""How long each kind's `resource_estimate` takes, the check every POST pays in the API.

Three arms per kind, each over `--requests` specs, timed in one process side by side:
  - repeated:  the kind's default spec again and again (what a retried POST pays);
  - new data:  the default with a new seed each time (data seeds change; a kind that
               built its data in the estimate would pay for it here);
  - new model: the default with a new model width each time (the parameter count of a
               shape not seen before: counted on the meta device once per shape).
The first estimate of the process (imports, first meta build) is reported apart.

    .venv/bin/python bench/resource_estimate.py
    .venv/bin/python bench/resource_estimate.py --requests 200
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

from core.catalog import all_kinds
from core.specs import ExperimentSpec

# Fields that draw the data, per kind, and the model-width field: the arms vary these.
_SEED_FIELDS = ("seed", "facts_seed", "graph_seed")
_WIDTH_PATHS = (("model", "width"), ("model", "n_embd"))


def _vary_seed(template: dict[str, Any], index: int) -> dict[str, Any]:
    return {**template, **{f: index for f in _SEED_FIELDS if f in template}}


def _vary_width(template: dict[str, Any], index: int) -> dict[str, Any]:
    model = dict(template["model"])
    for parent, leaf in _WIDTH_PATHS:
        if parent == "model" and leaf in model:
            model[leaf] = 8 * (index + 2)  # widths 16, 24, …: divisible by any head count ≤ 8
    return {**template, "model": model}


def _timings_ms(spec_class: type[ExperimentSpec], raws: Iterator[dict[str, Any]]) -> list[float]:
    timings = []
    for raw in raws:
        spec = spec_class.model_validate(raw)  # validation is timed by the API bench, not here
        started = time.perf_counter()
        spec.resource_estimate()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def _row(name: str, arm: str, timings: list[float]) -> str:
    p50 = statistics.median(timings)
    p95 = sorted(timings)[round(0.95 * (len(timings) - 1))]
    return f"| {name} | {arm} | {p50:.3f} | {p95:.3f} | {max(timings):.3f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100, help="Specs per kind and arm.")
    args = parser.parse_args()
    kinds = all_kinds()
    first_kind = next(iter(kinds.values()))
    started = time.perf_counter()
    first_kind.default_spec().resource_estimate()
    first_ms = (time.perf_counter() - started) * 1000
    print(f"machine: {platform.node()} ({platform.processor() or platform.machine()})")
    print(f"first estimate of the process ({first_kind.name}): {first_ms:.1f} ms\n")
    print("| kind | arm | p50 ms | p95 ms | max ms |")
    print("|---|---|---|---|---|")
    arms: dict[str, Callable[[dict[str, Any], int], dict[str, Any]]] = {
        "repeated": lambda template, _: template,
        "new data": _vary_seed,
        "new model": _vary_width,
    }
    for name, kind in kinds.items():
        template = kind.default_spec().model_dump(mode="json")
        for arm, vary in arms.items():
            raws = (vary(template, i) for i in range(args.requests))
            print(_row(name, arm, _timings_ms(kind.spec_class, raws)))


if __name__ == "__main__":
    main()
