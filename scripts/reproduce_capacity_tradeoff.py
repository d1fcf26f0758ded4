"""Reproduce the "Too Big to Think" table through a running memlab server.

Submits `capacity_tradeoff` at its default spec for every task × width, waits for all of
them, and prints a Markdown table of the stored results (final model, and the best
evaluation the paper's protocol would have picked).

    memlab serve --concurrency 2 &                # MEMLAB_TORCH_THREADS=1 on a 2-core box
    python scripts/reproduce_capacity_tradeoff.py --url http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from memlab_client.sdk import MemlabClient

TASKS = ("arithmetic", "facts", "joint")
WIDTHS = (14, 28, 56)


def submit_grid(client: MemlabClient, tag: str, seed: int) -> dict[tuple[str, int], str]:
    ids = {}
    for task in TASKS:
        for width in WIDTHS:
            spec = {
                "kind": "capacity_tradeoff",
                "task": task,
                "seed": seed,
                "model": {
                    "n_layer": 1,
                    "n_head": 1,
                    "n_embd": width,
                    "mlp_ratio": 1.0,
                    "bias": False,
                },
            }
            experiment = client.submit(spec, name=f"{task}-n{width}", tags=[tag])
            ids[(task, width)] = experiment["id"]
    return ids


def wait_all(client: MemlabClient, ids: dict[tuple[str, int], str]) -> dict[tuple[str, int], Any]:
    done: dict[tuple[str, int], Any] = {}
    while len(done) < len(ids):
        for key, experiment_id in ids.items():
            if key not in done:
                record = client.get(experiment_id)
                if record["status"] in ("succeeded", "failed", "cancelled"):
                    done[key] = record
                    print(f"{key}: {record['status']}", flush=True)
        time.sleep(10)
    return done


def _cell(metrics: dict[str, float] | None, *keys: str) -> str:
    if not metrics:
        return "—"
    return " / ".join(f"{metrics[k]:.3f}" if k in metrics else "—" for k in keys)


def table(records: dict[tuple[str, int], Any]) -> str:
    columns = {
        "arithmetic": ("arithmetic_add", "arithmetic_sub", "arithmetic_held_out"),
        "facts": ("facts",),
        "joint": ("arithmetic_add", "arithmetic_sub", "facts", "arithmetic_held_out"),
    }
    lines = [
        "| task (columns) | n_embd | final model | best eval (step) | minutes |",
        "|---|---|---|---|---|",
    ]
    for task in TASKS:
        for width in WIDTHS:
            record = records.get((task, width), {})
            result = record.get("result") or {}
            best = result.get("best") or {}
            minutes = result.get("training", {}).get("wall_seconds", 0) / 60
            lines.append(
                f"| {task} ({' / '.join(columns[task])}) | {width} | "
                f"{_cell(result.get('final'), *columns[task])} | "
                f"{_cell(best, *columns[task])} ({best.get('step', '—')}) | {minutes:.1f} |"
            )
    return "\n".join(lines)


def existing_grid(client: MemlabClient, tag: str) -> dict[tuple[str, int], Any]:
    """The newest experiment per grid cell among those tagged `tag` (names task-nWIDTH)."""
    found: dict[tuple[str, int], Any] = {}
    for record in client.list(tag=tag, limit=200)["items"]:  # newest first
        task, _, width = (record["name"] or "").rpartition("-n")
        if task in TASKS and width.isdigit():
            found.setdefault((task, int(width)), record)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="repro-capacity-tradeoff")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="Do not submit: tabulate the finished experiments already tagged --tag.",
    )
    args = parser.parse_args()
    with MemlabClient(args.url) as client:
        if args.report_only:
            records = existing_grid(client, args.tag)
        else:
            records = wait_all(client, submit_grid(client, args.tag, args.seed))
        print(table(records))


if __name__ == "__main__":
    main()
