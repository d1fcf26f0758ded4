"""LiRA against LOSS on trained targets, through a running memlab server.

    python examples/lira_vs_loss.py --url http://127.0.0.1:8000           # kg_memorization
    python examples/lira_vs_loss.py --quick --url http://127.0.0.1:8000   # a smaller pool

Trains one target per seed (a sweep), then asks each for a `lira` probe; the server trains
its shadow models (a sweep per target, batched) and runs the probe when they end. A
`counterfactual` probe of each target follows, on the same shadows (reused, not retrained). Both
attacks score the same target on the same items (its members and non-members, the
pool the shadows split), so they differ in one thing only: LOSS thresholds −ℓ(x) globally,
LiRA calibrates each item by the shadows that did and did not train on it.

Writes docs/data/lira_vs_loss.json (docs/data/quick/… with --quick, lira_vs_loss.stepsN.json
with --steps N) and prints a markdown table:
per seed and attack, AUC and TPR at 1% and 0.1% FPR, and over seeds the mean difference
LiRA − LOSS with its 95% Student-t interval. The published pattern (Carlini et al. 2022):
at low FPR, LiRA's TPR is many times LOSS's, while their AUCs differ far less.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core.stats import summarize
from memlab_client.sdk import MemlabClient

TARGET = {
    "kind": "kg_memorization",
    # Half the triplets held out: the pool is split evenly, so every shadow trains on as
    # many triplets as the target did.
    "held_out_fraction": 0.5,
    "graph": {"n_concepts": 1500},
    "train": {"steps": 1000},
}
QUICK_TARGET = {**TARGET, "graph": {"n_concepts": 600}, "train": {"steps": 500}}
ATTACKS = ("lira_online", "lira_offline", "lira_online_fixed_variance", "loss")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--shadows", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="A smaller graph, 500 steps.")
    parser.add_argument(
        "--steps", type=int, default=None, help="The targets' train.steps (default 1,000)."
    )
    args = parser.parse_args()
    target = QUICK_TARGET if args.quick else TARGET
    name = "lira_vs_loss"
    if args.steps is not None:
        target = {**target, "train": {"steps": args.steps}}
        name += f".steps{args.steps}"
    folder = Path("docs/data/quick" if args.quick else "docs/data")
    with MemlabClient(args.url) as client:
        rows = run(client, target, args.seeds, args.shadows)
    summary = summarize_rows(rows)
    record = {
        "command": " ".join(["python examples/lira_vs_loss.py", *sys.argv[1:]]),
        "target": target,
        "shadows": args.shadows,
        "per_seed": rows,
        "summary": summary,
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    print(markdown(rows, summary))


def run(
    client: MemlabClient, target: dict[str, Any], seeds: int, shadows: int
) -> list[dict[str, Any]]:
    """Train the targets, probe each with LiRA, and collect both attacks per seed."""
    request = {"base": target, "seeds": seeds, "name": "lira vs loss: targets", "tags": ["lira"]}
    sweep = client.sweep(request, reuse=True)
    print(f"targets: sweep {sweep['id']}", file=sys.stderr)
    client.wait_sweep(sweep["id"])
    children = client.sweep_experiments(sweep["id"])
    failed = [c["id"] for c in children if c["status"] != "succeeded"]
    if failed:
        raise SystemExit(f"targets did not succeed: {failed}")
    probes = {
        child["spec"]["seed"]: client.probe(child["id"], {"kind": "lira", "shadows": shadows})
        for child in children
    }
    rows = []
    for seed, probe in sorted(probes.items()):
        print(
            f"seed {seed}: probe {probe['id']}, shadows {probe['shadow_sweep_id']}", file=sys.stderr
        )
        done = finished(client, probe)
        # Counterfactual memorization on the same pool: the same shadows, reused.
        counterfactual = client.probe(
            done["experiment_id"], {"kind": "counterfactual", "shadows": shadows, "top_k": 5}
        )
        if counterfactual["shadow_sweep_id"] != probe["shadow_sweep_id"]:
            raise SystemExit("the counterfactual probe did not reuse the LiRA probe's shadows")
        memorized = finished(client, counterfactual)["result"]
        rows.append(
            {
                "seed": seed,
                "probe_id": probe["id"],
                "shadow_sweep_id": probe["shadow_sweep_id"],
                **attack_figures(done["result"]),
                "counterfactual": {
                    "probe_id": counterfactual["id"],
                    "distribution": memorized["distribution"],
                    "by_target_membership": memorized["by_target_membership"],
                    "top": memorized["top"],
                },
            }
        )
    return rows


def finished(client: MemlabClient, probe: dict[str, Any]) -> dict[str, Any]:
    """The probe once it has ended; exits with its error if it did not succeed."""
    done = client.wait_probe(probe["id"])
    if done["status"] != "succeeded":
        raise SystemExit(f"probe {probe['id']} {done['status']}: {done['error']}")
    return done


def attack_figures(result: dict[str, Any]) -> dict[str, Any]:
    """AUC and TPR at 1% and 0.1% FPR of each attack, and the blind baseline's AUC."""
    metrics = {
        "lira_online": result["variants"]["online"],
        "lira_offline": result["variants"]["offline"],
        "lira_online_fixed_variance": result["variants"]["online_fixed_variance"],
        "loss": result["loss_attack"],
    }
    figures: dict[str, Any] = {
        name: {
            "auc": m["auc"],
            "auc_ci95": m["auc_ci95"],
            **{point["label"]: point["tpr"] for point in m["tpr_at_low_fpr"]},
        }
        for name, m in metrics.items()
    }
    figures["blind_baseline_auc"] = result["blind_baseline"]["auc"]
    figures["n_members"] = result["attack"]["n_members"]
    figures["n_non_members"] = result["attack"]["n_non_members"]
    return figures


def summarize_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per attack and figure, the mean over seeds; for each LiRA variant − LOSS, the mean
    difference and its 95% interval over seeds (paired by seed: one target each)."""
    figures = [key for key in rows[0]["loss"] if key != "auc_ci95"]
    summary: dict[str, Any] = {}
    for attack in ATTACKS:
        summary[attack] = {key: summarize([r[attack][key] for r in rows]).mean for key in figures}
    for attack in ATTACKS[:-1]:
        for key in figures:
            difference = summarize([r[attack][key] - r["loss"][key] for r in rows])
            summary[f"{attack}_minus_loss {key}"] = {
                "mean": difference.mean,
                "ci95": [difference.ci95_low, difference.ci95_high],
            }
    summary["blind_baseline_auc"] = summarize([r["blind_baseline_auc"] for r in rows]).mean
    return summary


def markdown(rows: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    figures = [key for key in rows[0]["loss"] if key != "auc_ci95"]
    lines = [
        "| seed | attack | " + " | ".join(figures) + " |",
        "|---|---|" + "---|" * len(figures),
    ]
    for row in rows:
        for attack in ATTACKS:
            values = " | ".join(f"{row[attack][key]:.3f}" for key in figures)
            lines.append(f"| {row['seed']} | {attack} | {values} |")
    lines.append("")
    lines.append(f"Over {len(rows)} seeds, LiRA − LOSS (mean difference, 95% t-interval):")
    lines.append("")
    lines.append("| variant | " + " | ".join(figures) + " |")
    lines.append("|---|" + "---|" * len(figures))
    for attack in ATTACKS[:-1]:
        cells = []
        for key in figures:
            entry = summary[f"{attack}_minus_loss {key}"]
            low, high = entry["ci95"]
            interval = f" [{low:+.3f}, {high:+.3f}]" if low is not None else ""
            cells.append(f"{entry['mean']:+.3f}{interval}")
        lines.append(f"| {attack} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"- blind baseline AUC (mean): {summary['blind_baseline_auc']:.3f}")
    lines.append("")
    lines.append("Counterfactual memorization of the pool items (token accuracy IN − OUT):")
    lines.append("")
    lines.append(
        "| seed | mean | 0.1 | median | 0.9 | members | non-members | top item (score, −ℓ gain) |"
    )
    lines.append("|---|---|---|---|---|---|---|---|")
    for row in rows:
        memorized = row["counterfactual"]
        quantiles = memorized["distribution"]["quantiles"]
        split = memorized["by_target_membership"]
        top = memorized["top"][0]
        lines.append(
            f"| {row['seed']} | {memorized['distribution']['mean']:.3f} | {quantiles['0.1']:.3f} "
            f"| {quantiles['0.5']:.3f} | {quantiles['0.9']:.3f} | {split['members']:.3f} "
            f"| {split['non_members']:.3f} | `{top['text']}` ({top['score']:.2f}, "
            f"{top['loss_score']:.1f}) |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
