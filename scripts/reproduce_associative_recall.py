"""Sweep `associative_recall` (MQAR) over mixers × key-value pairs through a memlab server.

Submits the kind's default spec for each mixer and pair count (state size and width
fixed), waits, and prints test accuracy as a Markdown table: attention should solve
every pair count, S4D should degrade as pairs grow, S6 should beat S4D.

    memlab serve --concurrency 2 &
    python scripts/reproduce_associative_recall.py --url http://127.0.0.1:8000
    python scripts/reproduce_associative_recall.py --report-only     # tabulate again
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from client.sdk import MemlabClient

MIXERS: dict[str, dict[str, Any]] = {
    "attention": {"type": "attention", "n_head": 2},
    "linear_attention": {"type": "linear_attention", "n_head": 2},
    "s4d": {"type": "s4d", "state_size": 16},
    "s6": {"type": "s6", "state_size": 16},
    "mamba2": {"type": "mamba2", "n_head": 2, "state_size": 16},
}
PAIRS = (2, 4, 8)


def submit(client: MemlabClient, tag: str, seed: int) -> dict[tuple[str, int], str]:
    ids = {}
    for name, mixer in MIXERS.items():
        for pairs in PAIRS:
            spec = {
                "kind": "associative_recall",
                "seed": seed,
                "num_kv_pairs": pairs,
                "model": {"mixer": mixer},
            }
            ids[(name, pairs)] = client.submit(spec, name=f"{name}-p{pairs}", tags=[tag])["id"]
    return ids


def collect(client: MemlabClient, tag: str) -> dict[tuple[str, int], Any]:
    found: dict[tuple[str, int], Any] = {}
    for record in client.list(tag=tag, limit=200)["items"]:
        name, _, pairs = (record["name"] or "").rpartition("-p")
        if name in MIXERS and pairs.isdigit():
            found.setdefault((name, int(pairs)), record)
    return found


def table(records: dict[tuple[str, int], Any]) -> str:
    lines = [
        "| mixer | " + " | ".join(f"P={p}" for p in PAIRS) + " |",
        "|---" * (len(PAIRS) + 1) + "|",
    ]
    for name in MIXERS:
        cells = []
        for pairs in PAIRS:
            result = (records.get((name, pairs)) or {}).get("result") or {}
            accuracy = result.get("test_accuracy")
            cells.append("—" if accuracy is None else f"{accuracy:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="repro-associative-recall")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    with MemlabClient(args.url) as client:
        if not args.report_only:
            ids = submit(client, args.tag, args.seed)
            while any(
                client.get(i)["status"] not in ("succeeded", "failed", "cancelled")
                for i in ids.values()
            ):
                time.sleep(15)
        print(table(collect(client, args.tag)))


if __name__ == "__main__":
    main()
