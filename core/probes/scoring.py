"""Scoring membership attacks: ROC, AUC with a bootstrap interval, TPR at low FPR.

One convention everywhere: a higher score means "more likely a member", and members are
the positive class. Where there are too few non-members to resolve a false-positive
rate (fewer than 1/FPR), the TPR is reported at 0% FPR and labelled so, never as the
TPR at the rate asked for. A split with fewer than `MIN_NON_MEMBERS` non-members is
still scored, but its metrics say `underpowered: true`: read its AUC by its interval.
"""

from __future__ import annotations

import math
from typing import Any

import torch

REPORTED_FPRS = (0.01, 0.001)
# Below this many non-members a split is flagged underpowered: the AUC's 95% interval is
# then about ±0.1 wide or more, too wide to tell a weak attack from chance.
MIN_NON_MEMBERS = 200
_MAX_ROC_POINTS = 200


def roc_curve(
    members: torch.Tensor, non_members: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(fpr, tpr) at every distinct threshold, from (0, 0) to (1, 1); ties move together.

    >>> fpr, tpr = roc_curve(torch.tensor([3.0, 2.0]), torch.tensor([1.0, 2.0]))
    >>> fpr.tolist(), tpr.tolist()
    ([0.0, 0.0, 0.5, 1.0], [0.0, 0.5, 1.0, 1.0])
    """
    scores = torch.cat([members, non_members]).double()
    labels = torch.cat([torch.ones(len(members)), torch.zeros(len(non_members))]).double()
    order = torch.argsort(scores, descending=True, stable=True)
    scores, labels = scores[order], labels[order]
    true_pos = torch.cumsum(labels, 0)
    false_pos = torch.cumsum(1 - labels, 0)
    # Keep the last index of each run of equal scores: a threshold admits all ties at once.
    last_of_run = torch.ones(len(scores), dtype=torch.bool)
    last_of_run[:-1] = scores[1:] != scores[:-1]
    tpr = torch.cat([torch.zeros(1), true_pos[last_of_run] / max(1, len(members))])
    fpr = torch.cat([torch.zeros(1), false_pos[last_of_run] / max(1, len(non_members))])
    return fpr.double(), tpr.double()


def roc_auc(members: torch.Tensor, non_members: torch.Tensor) -> float:
    """P(member score > non-member score) + ½ P(equal): the Mann–Whitney form of ROC AUC,
    computed from ranks (ties get their average rank) in O(n log n).

    >>> roc_auc(torch.tensor([3.0, 2.0]), torch.tensor([1.0, 2.0]))
    0.875
    """
    n_members, n_non_members = len(members), len(non_members)
    if n_members == 0 or n_non_members == 0:
        return math.nan
    scores = torch.cat([members, non_members]).double()
    _, group, counts = torch.unique(scores, sorted=True, return_inverse=True, return_counts=True)
    # 1-based ranks: a group of tied scores spans ranks start+1 … start+count; average them.
    starts = torch.cumsum(counts, 0) - counts
    average_rank = starts.double() + (counts.double() + 1) / 2
    member_rank_sum = average_rank[group[:n_members]].sum()
    u = member_rank_sum - n_members * (n_members + 1) / 2
    return float(u / (n_members * n_non_members))


def bootstrap_auc_interval(
    members: torch.Tensor,
    non_members: torch.Tensor,
    rounds: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of the AUC over resamplings of members and non-members."""
    generator = torch.Generator().manual_seed(seed)
    estimates = torch.empty(rounds, dtype=torch.float64)
    for round_index in range(rounds):
        m = members[torch.randint(len(members), (len(members),), generator=generator)]
        n = non_members[torch.randint(len(non_members), (len(non_members),), generator=generator)]
        estimates[round_index] = roc_auc(m, n)
    tail = (1 - confidence) / 2
    low, high = torch.quantile(estimates, torch.tensor([tail, 1 - tail], dtype=torch.float64))
    return float(low), float(high)


def tpr_at_fpr(members: torch.Tensor, non_members: torch.Tensor, fpr: float) -> dict[str, Any]:
    """The highest TPR whose FPR does not exceed `fpr`, honestly labelled.

    With fewer than 1/fpr non-members the only FPR below `fpr` that can be measured is 0,
    so the figure is reported as "TPR@0%FPR" with `resolved` false.
    """
    resolved = len(non_members) >= math.ceil(1 / fpr)
    limit = fpr if resolved else 0.0
    curve_fpr, curve_tpr = roc_curve(members, non_members)
    allowed = curve_fpr <= limit + 1e-12
    value = float(curve_tpr[allowed].max()) if bool(allowed.any()) else 0.0
    label = f"TPR@{_percent(fpr)}FPR" if resolved else "TPR@0%FPR"
    return {"fpr": fpr, "label": label, "tpr": value, "resolved": resolved}


def _percent(rate: float) -> str:
    return f"{rate * 100:g}%"


def membership_metrics(
    members: torch.Tensor, non_members: torch.Tensor, *, seed: int, bootstrap_rounds: int
) -> dict[str, Any]:
    """AUC with its 95% bootstrap interval (over `bootstrap_rounds` resamplings), TPR at 1%
    and 0.1% FPR, the ROC as data, and whether the split has too few non-members."""
    low, high = bootstrap_auc_interval(members, non_members, bootstrap_rounds, seed=seed)
    fpr, tpr = roc_curve(members, non_members)
    return {
        "auc": roc_auc(members, non_members),
        "auc_ci95": [low, high],
        "bootstrap_rounds": bootstrap_rounds,
        "tpr_at_low_fpr": [tpr_at_fpr(members, non_members, rate) for rate in REPORTED_FPRS],
        "roc": _thin_roc(fpr, tpr),
        "n_members": len(members),
        "n_non_members": len(non_members),
        "underpowered": len(non_members) < MIN_NON_MEMBERS,
    }


def _thin_roc(fpr: torch.Tensor, tpr: torch.Tensor) -> dict[str, list[float]]:
    """At most ~200 points of the ROC, always keeping its ends and its low-FPR start."""
    if len(fpr) > _MAX_ROC_POINTS:
        # Log-spaced indices keep the low-FPR corner, where the attacks differ, in detail.
        picks = torch.unique(
            torch.logspace(0, math.log10(len(fpr)), _MAX_ROC_POINTS).long().clamp(max=len(fpr)) - 1
        )
        picks = torch.unique(torch.cat([torch.tensor([0]), picks, torch.tensor([len(fpr) - 1])]))
        fpr, tpr = fpr[picks], tpr[picks]
    return {"fpr": [round(float(v), 6) for v in fpr], "tpr": [round(float(v), 6) for v in tpr]}


def attack_report(
    member_scores: torch.Tensor,
    non_member_scores: torch.Tensor,
    blind_member_scores: torch.Tensor,
    blind_non_member_scores: torch.Tensor,
    *,
    seed: int,
    bootstrap_rounds: int,
    blind_baseline: str,
) -> dict[str, Any]:
    """A membership attack's metrics beside those of a blind baseline that never looks at
    the model: if the baseline also separates the sets, the split is not a fair one. Both
    are bootstrapped alike (same rounds, same seed), so their intervals compare."""
    resampling = {"seed": seed, "bootstrap_rounds": bootstrap_rounds}
    return {
        "attack": membership_metrics(member_scores, non_member_scores, **resampling),
        "blind_baseline": {
            "score": blind_baseline,
            **membership_metrics(blind_member_scores, blind_non_member_scores, **resampling),
        },
        "convention": "higher score = more likely a member; members are the positive class",
    }
