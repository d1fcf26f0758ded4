"""Memorized, spurious or generalized: the rule that classifies samples a generative
model produced against its training points, shared by `associative_memory` (part
"diffusion") and the `generation_copy` probe.

The seed paper's per-sample rule (its code, `stats_utils.compute_metrics`) calls a sample
memorized when its nearest training point is within δ_m, spurious when not but another
sample lies within δ_s, generalized otherwise. On a low-dimensional manifold that rule
fails: M samples spread over a ring have a neighbour about 2π/M away, so with any fixed
δ_s every generalized sample is called spurious (shared/research/seed-details.md §2).
memlab's rule (its own, after the notes' advice) judges copies per sample and everything
else by the cluster a sample falls in:

1. A sample is **memorized** when it copies one training point: its nearest training
   point is within `memorized_radius` (δ_m) AND at most `copy_ratio` times as far as the
   second-nearest (the ratio test of feature matching). A sample midway between two
   training points copies neither, and where training points lie denser than δ_m (a ring
   of K = 1,000 points is 0.006 apart) being within δ_m of one is no evidence of copying
   it. The rule needs no β: it reads positions only.
2. The samples that copy nothing are grouped by single linkage: two samples closer than
   `link_distance` share a cluster, and so, transitively, do their neighbours. A cluster's
   spread is the root-mean-square distance of its samples to their centroid.
3. A cluster of at least two samples with spread below `compact_spread` is a compact,
   recurring state that copies nothing: **spurious** (a Hopfield-style mixture state,
   e.g. the midpoint of a close pair, whether or not it lies near the data).
4. A cluster with spread at least `compact_spread` is extended: **generalized** (e.g. the
   ring of samples that a large training set gives).
5. A cluster of one sample that copies nothing is **lone**: not a recurring state. It is
   counted as generalized, as the paper's per-sample rule counts a sample that copies
   nothing and has no other sample near it, and reported on its own as well (`lone`, a
   part of the generalized fraction), so a reader sees how much of that fraction is
   stray samples rather than extended clusters. The three fractions sum to 1.

The link must exceed the gaps between neighbouring samples on an extended set (about
L·ln(M)/M for M samples spread over a length L, the largest of M uniform gaps), or an
extended set breaks into compact pieces that count as spurious: with the 0.05 default, a
ring of circumference 2π needs about 1,000 samples.

Distances are plain Euclidean (the nearest training point is the one at the SMALLEST
distance; the paper's L2 path ranked inverse distances, so its "nearest" was the
farthest).

>>> training = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
>>> samples = torch.tensor([[1.0, 0.0], [1.0, 0.001], [0.0, 0.5], [0.0, 0.5],
...                         [0.0, -0.5]], dtype=torch.float64)
>>> classified = classify_samples(samples, training, AttractorThresholds())
>>> classified.fractions(), classified.lone_fraction()
({'memorized': 0.4, 'spurious': 0.4, 'generalized': 0.2}, 0.2)

Dimensions: M samples, K training points, C clusters, D dimensions (samples are
flattened to D).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import IntEnum

import torch

# Defaults scaled to the unit-circle toy (diameter 2; the kernel width of the empirical
# energy at β = 20 is 1/√(2β) ≈ 0.16). δ_m = 0.01 lies below 1 − R*(20) = 0.0127, the gap
# between the circle and the K → ∞ ring that generalized samples settle on, so a sample
# on that ring is never within δ_m of a training point; the link joins neighbours on a
# ring of 1,000 samples (mean gap 0.006); a compact state spreads far less than the
# kernel width.
DEFAULT_MEMORIZED_RADIUS = 0.01
DEFAULT_COPY_RATIO = 0.5
DEFAULT_LINK_DISTANCE = 0.05
DEFAULT_COMPACT_SPREAD = 0.05
# The probe target note in which a run carries the thresholds it applied (JSON), for the
# `generation_copy` probe to default to.
THRESHOLDS_NOTE = "attractor_thresholds"
# Chunk of rows when computing distances, to bound memory at (chunk, K).
_CHUNK = 4096


class Verdict(IntEnum):
    memorized = 0
    spurious = 1
    generalized = 2


@dataclass(frozen=True)
class AttractorThresholds:
    """The rule's three lengths, in the samples' units, and its copy ratio."""

    memorized_radius: float = DEFAULT_MEMORIZED_RADIUS
    copy_ratio: float = DEFAULT_COPY_RATIO
    link_distance: float = DEFAULT_LINK_DISTANCE
    compact_spread: float = DEFAULT_COMPACT_SPREAD

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class ClassifiedSamples:
    """Each sample's verdict and cluster, and its distances to the training points.

    verdict:          (M,) int64 `Verdict` of each sample.
    lone:             (M,) bool, the sample copies nothing and is a cluster of its own
                      (its verdict is generalized).
    cluster:          (M,) int64 cluster of each sample that copies nothing, 0 … C − 1;
                      −1 for the copies.
    cluster_verdict:  (C,) int64 `Verdict` of each cluster (spurious or generalized).
    nearest_distance: (M,) float64 Euclidean distance to the nearest training point.
    nearest_index:    (M,) int64 index of that training point.
    """

    verdict: torch.Tensor
    lone: torch.Tensor
    cluster: torch.Tensor
    cluster_verdict: torch.Tensor
    nearest_distance: torch.Tensor
    nearest_index: torch.Tensor

    def fractions(self) -> dict[str, float]:
        """The fraction of samples of each verdict (they sum to 1)."""
        counts = torch.bincount(self.verdict, minlength=len(Verdict))
        total = max(len(self.verdict), 1)
        return {v.name: float(counts[v]) / total for v in Verdict}

    def lone_fraction(self) -> float:
        """The fraction of samples that are lone (a part of the generalized fraction)."""
        return float(self.lone.double().mean()) if len(self.lone) else 0.0

    def counts(self) -> dict[str, int]:
        """How many distinct training points are copied, how many spurious and extended
        (generalized) clusters there are, and how many lone samples."""
        copies = self.verdict == Verdict.memorized
        lone = int(self.lone.sum())
        per_verdict = torch.bincount(self.cluster_verdict, minlength=len(Verdict))
        return {
            "copied_points": len(torch.unique(self.nearest_index[copies])),
            "spurious": int(per_verdict[Verdict.spurious]),
            "generalized": int(per_verdict[Verdict.generalized]) - lone,
            "lone": lone,
        }


def flatten(items: torch.Tensor) -> torch.Tensor:
    """(M, D) float64 view of (M, ...) items."""
    return items.reshape(items.shape[0], -1).to(torch.float64)


def nearest_training_points(
    samples: torch.Tensor, training: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """((M,) distance, (M,) index) of each sample's nearest training point: the smallest
    Euclidean distance, computed in row chunks."""
    first, _, index = _two_nearest(samples, training)
    return first, index


def copies(
    first: torch.Tensor, second: torch.Tensor, thresholds: AttractorThresholds
) -> torch.Tensor:
    """(M,) bool: the nearest training point (at `first`) is within δ_m and at most
    copy_ratio times as far as the second nearest (at `second`, infinite for K = 1)."""
    return (first <= thresholds.memorized_radius) & (first <= thresholds.copy_ratio * second)


def single_linkage_clusters(points: torch.Tensor, link_distance: float) -> torch.Tensor:
    """(M,) int64 cluster of each of `points` (M, D): the connected components of the
    graph joining points closer than `link_distance` (≤ counts as joined).

    Components are read off a minimum spanning tree (Prim's algorithm, O(M²) time, O(M)
    memory): cutting its edges longer than the link leaves exactly the components, and in
    Prim's order each point's tree parent is labelled before it. Identical points are
    merged first, so the tree spans distinct points only.
    """
    if points.shape[0] == 0:
        return torch.zeros(0, dtype=torch.int64)
    distinct, position = torch.unique(points, dim=0, return_inverse=True)  # (U, D), (M,)
    count = distinct.shape[0]
    labels = torch.empty(count, dtype=torch.int64)
    in_tree = torch.zeros(count, dtype=torch.bool)
    best = torch.full((count,), float("inf"), dtype=torch.float64)  # distance to the tree
    parent = torch.zeros(count, dtype=torch.int64)
    labels[0] = 0
    vertex, next_label = 0, 1
    for _ in range(count - 1):
        in_tree[vertex] = True
        distance = (distinct - distinct[vertex]).norm(dim=1)  # (U,)
        closer = (distance < best) & ~in_tree
        best = torch.where(closer, distance, best)
        parent = torch.where(closer, vertex, parent)
        best[in_tree] = float("inf")
        vertex = int(best.argmin())
        if float(best[vertex]) <= link_distance:
            labels[vertex] = labels[parent[vertex]]
        else:
            labels[vertex] = next_label
            next_label += 1
    return labels[position]


def classify_samples(
    samples: torch.Tensor, training: torch.Tensor, thresholds: AttractorThresholds
) -> ClassifiedSamples:
    """Classify each of `samples` (M, ...) against `training` (K, ...) by the rule in this
    module's docstring."""
    points, anchors = flatten(samples), flatten(training)
    if points.shape[1] != anchors.shape[1]:
        raise ValueError(
            f"samples have {points.shape[1]} values each, training points {anchors.shape[1]}"
        )
    first, second, nearest_index = _two_nearest(points, anchors)
    copied = copies(first, second, thresholds)  # (M,)
    rest = points[~copied]  # (M', D) the samples that copy nothing
    labels = single_linkage_clusters(rest, thresholds.link_distance)  # (M',)
    cluster_verdict, sizes = _cluster_verdicts(rest, labels, thresholds.compact_spread)  # (C,)
    verdict = torch.full((points.shape[0],), int(Verdict.memorized), dtype=torch.int64)
    verdict[~copied] = cluster_verdict[labels]
    lone = torch.zeros(points.shape[0], dtype=torch.bool)
    lone[~copied] = sizes[labels] == 1
    cluster = torch.full((points.shape[0],), -1, dtype=torch.int64)
    cluster[~copied] = labels
    return ClassifiedSamples(verdict, lone, cluster, cluster_verdict, first, nearest_index)


def _cluster_verdicts(
    points: torch.Tensor, labels: torch.Tensor, compact_spread: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """((C,) int64 verdict, (C,) size) of each cluster of `points` (M', D) labelled
    `labels` (M',): spurious when of two samples or more with spread below
    `compact_spread`; generalized otherwise (a cluster of one has spread 0: lone)."""
    count = int(labels.max()) + 1 if len(labels) else 0
    sizes = torch.bincount(labels, minlength=count).to(torch.float64)  # (C,)
    centroids = torch.zeros(count, points.shape[1], dtype=torch.float64)
    centroids = centroids.index_add_(0, labels, points) / sizes.unsqueeze(1)  # (C, D)
    squared = (points - centroids[labels]).square().sum(dim=1)  # (M',)
    spread = torch.zeros(count, dtype=torch.float64).index_add_(0, labels, squared)
    spread = (spread / sizes).sqrt()  # (C,) root-mean-square distance to the centroid
    verdict = torch.full((count,), int(Verdict.generalized), dtype=torch.int64)
    verdict[(spread < compact_spread) & (sizes >= 2)] = int(Verdict.spurious)
    return verdict, sizes


def _two_nearest(
    samples: torch.Tensor, training: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """((M,) nearest distance, (M,) second-nearest distance, (M,) nearest index) from each
    of `samples` (M, D) to `training` (K, D), in row chunks; the second is infinite when
    there is one training point."""
    if training.shape[0] == 0:
        raise ValueError("there are no training points to compare the samples with")
    firsts, seconds, indices = [], [], []
    for start in range(0, samples.shape[0], _CHUNK):
        block = _euclidean(samples[start : start + _CHUNK], training)  # (chunk, K)
        if training.shape[0] == 1:
            firsts.append(block[:, 0])
            seconds.append(torch.full_like(block[:, 0], float("inf")))
            indices.append(torch.zeros(block.shape[0], dtype=torch.int64))
            continue
        nearest = block.topk(2, dim=1, largest=False)  # ascending
        firsts.append(nearest.values[:, 0])
        seconds.append(nearest.values[:, 1])
        indices.append(nearest.indices[:, 0])
    if not firsts:
        empty = torch.zeros(0, dtype=torch.float64)
        return empty, empty, torch.zeros(0, dtype=torch.int64)
    return torch.cat(firsts), torch.cat(seconds), torch.cat(indices)


def _euclidean(points: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """(N, K) Euclidean distances computed from differences, not from the expansion
    ‖a‖² + ‖b‖² − 2a·b, which loses the small distances a copy is judged by."""
    return torch.cdist(points, anchors, compute_mode="donot_use_mm_for_euclid_dist")
