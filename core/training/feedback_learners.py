"""Learners that learn to answer items from a teacher's +1/−1 feedback alone (interactive
RL on a one-step task), each with item-level and feature-level parameters.

Every learner keeps two tables and scores answer a for item i with feature f as

    score(i, a) = item_values[i, a] + feature_values[f, a]        # (N, k) and (F, k)

and updates both from the same feedback, so the same learner runs unchanged on a task
where the feature decides the answer (grammar: the feature table carries the rule to
unseen items) and on one where it does not (vocabulary: it learns nothing that
transfers). Which tables matter is a finding, not a construction. Learners (`learner`):

- `q_softmax`, `q_epsilon_greedy`: action values of a contextual bandit (the task is one
  step, so Q-learning's target is the feedback r itself, γ = 0), fitted as a linear model
  on item and feature indicators by the LMS rule δ = r − score(i, a),
  item_values[i, a] += α_item·δ, feature_values[f, a] += α_feature·δ; the item table
  fits the residual the rule leaves (the exceptions). They act by softmax(score/τ), or
  ε-greedy (ties broken at random).
- `tamer` (Knox & Stone): regresses the human reward H(i, a) directly with the same
  linear model and acts greedily on it, ties broken at random; no exploration and no
  bootstrapping. On a one-step task its update is the Q learners' (both regress r); what
  differs is that it never explores.
- `policy_shaping` (Griffith et al. 2013): counts Δ(i, a) = #(+1) − #(−1) for the item
  and Δ(f, a) for its feature (memlab's extension: the paper's feedback is per state),
  and takes P(a optimal) ∝ C^Δ / (C^Δ + (1 − C)^Δ) with Δ = Δ(i, a) + Δ(f, a) and C the
  teacher consistency it assumes; it acts by sampling a ∝ P(a optimal). Its tables hold
  the log-odds Δ·ln(C/(1 − C)), so score = item + feature as for the others. Counts are
  unbounded: a feature seen on many items outvotes an exception's own few counts, so
  this learner over-regularizes exceptions (the item table of the LMS learners does not:
  the rule's values stay bounded by the feedback).

Recall at test (memlab's choice, the same for every learner): the answer is drawn from
softmax(score/τ_test), and `recall_probability` gives P(correct) exactly. Forgetting
scales the tables (`ValueTables.decayed`); under a greedy read-out a uniform scaling
would change nothing, which is why the read-out is soft. The learners' scores differ in
scale (LMS values near ±1, policy shaping's log-odds grow with the counts), so one τ_test
forgets them at different speeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

LearnerName = Literal["q_softmax", "q_epsilon_greedy", "policy_shaping", "tamer"]
LEARNERS: tuple[LearnerName, ...] = ("q_softmax", "q_epsilon_greedy", "policy_shaping", "tamer")
# Scores closer than this are a tie for the greedy learners.
TIE_TOLERANCE = 1e-12


@dataclass(frozen=True)
class LearnerSettings:
    """What a learner needs besides the task's sizes.

    item_learning_rate, feature_learning_rate: α of the LMS learners' two tables.
    temperature: τ of q_softmax's action softmax. epsilon: q_epsilon_greedy's exploration.
    consistency: policy_shaping's assumed teacher consistency C in (1/2, 1).
    No defaults here: the spec (`InteractiveTeachingSpec`) holds them, in one place.
    """

    name: LearnerName
    item_learning_rate: float
    feature_learning_rate: float
    temperature: float
    epsilon: float
    consistency: float


@dataclass(frozen=True)
class ValueTables:
    """A learner's parameters: item_values (N, k) and feature_values (F, k), float64.

    Frozen means the two tensors are fixed, not their entries: `FeedbackLearner.update`
    writes into them in place (one entry per feedback), while `decayed` returns new
    tables and leaves these alone.
    """

    item_values: torch.Tensor
    feature_values: torch.Tensor

    def scores(self, items: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """score(i, a) for each item: (B, k) from items (B,) and their features (B,)."""
        return self.item_values[items] + self.feature_values[features]

    def decayed(self, item_factor: float, feature_factor: float) -> ValueTables:
        """The tables after forgetting: each scaled by its own factor in [0, 1]."""
        return ValueTables(self.item_values * item_factor, self.feature_values * feature_factor)


def recall_probability(
    tables: ValueTables,
    items: torch.Tensor,
    features: torch.Tensor,
    answers: torch.Tensor,
    test_temperature: float,
) -> torch.Tensor:
    """P(the correct answer) for each item (B,) when the answer is drawn from
    softmax(score/τ_test); 1/k where every score is equal."""
    probabilities = torch.softmax(tables.scores(items, features) / test_temperature, dim=1)
    return probabilities.gather(1, answers.unsqueeze(1)).squeeze(1)


class FeedbackLearner:
    """One learner's tables, its action rule and its update. Every draw is from `rng`."""

    def __init__(
        self,
        settings: LearnerSettings,
        item_count: int,
        feature_count: int,
        answer_count: int,
        rng: torch.Generator,
    ) -> None:
        self.settings = settings
        self.answer_count = answer_count
        self.rng = rng
        self.tables = ValueTables(
            torch.zeros(item_count, answer_count, dtype=torch.float64),
            torch.zeros(feature_count, answer_count, dtype=torch.float64),
        )
        # policy_shaping: the log-odds one +1 adds, ln(C/(1 − C)).
        self._evidence = math.log(settings.consistency / (1 - settings.consistency))

    def _scores(self, item: int, feature: int) -> torch.Tensor:
        """(k,) scores of one item."""
        return self.tables.item_values[item] + self.tables.feature_values[feature]

    def act(self, item: int, feature: int) -> int:
        """The answer the learner gives to `item` while being taught."""
        scores = self._scores(item, feature)
        name = self.settings.name
        if name == "q_softmax":
            return self._sample(torch.softmax(scores / self.settings.temperature, dim=0))
        if name == "policy_shaping":
            # P(a optimal) = C^Δ/(C^Δ + (1 − C)^Δ) = sigmoid(Δ·ln(C/(1 − C))), normalized.
            optimal = torch.sigmoid(scores)
            return self._sample(optimal / optimal.sum())
        if name == "q_epsilon_greedy" and self._uniform() < self.settings.epsilon:
            return min(int(self._uniform() * self.answer_count), self.answer_count - 1)
        return self._greedy(scores)

    def update(self, item: int, feature: int, answer: int, feedback: int) -> None:
        """Learn from feedback +1 or −1 on `answer`; 0 (silence) changes nothing."""
        if feedback == 0:
            return
        items, features = self.tables.item_values, self.tables.feature_values
        if self.settings.name == "policy_shaping":
            items[item, answer] += feedback * self._evidence
            features[feature, answer] += feedback * self._evidence
            return
        error = feedback - float(items[item, answer] + features[feature, answer])
        items[item, answer] += self.settings.item_learning_rate * error
        features[feature, answer] += self.settings.feature_learning_rate * error

    def _greedy(self, scores: torch.Tensor) -> int:
        best = (scores >= scores.max() - TIE_TOLERANCE).nonzero().flatten().tolist()
        return int(best[min(int(self._uniform() * len(best)), len(best) - 1)])

    def _sample(self, probabilities: torch.Tensor) -> int:
        cumulative = probabilities.cumsum(0)
        threshold = torch.tensor(self._uniform() * float(cumulative[-1]), dtype=cumulative.dtype)
        drawn = int(torch.searchsorted(cumulative, threshold, right=True))
        return min(drawn, self.answer_count - 1)

    def _uniform(self) -> float:
        return float(torch.rand((), generator=self.rng, dtype=torch.float64))
