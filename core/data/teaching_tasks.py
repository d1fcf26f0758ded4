"""The two tasks a learner is taught from feedback: vocabulary (each item's answer is its
own) and grammar (a hidden feature decides the answer, with irregular exceptions).

Both tasks have the same shape, so one learner runs on both unchanged: N items, each with
a hidden feature in [0, F) and a correct answer in [0, k). Items 0 … S−1 are taught (the
*seen* items); items S … N−1 are only tested (the *unseen* items). What differs is how
the answer relates to the feature:

- **vocabulary** (memorization; e.g. a French word and its meaning): answers and features
  are drawn independently and uniformly. The feature exists, so a learner's feature-level
  parameters exist and are trained, but it says nothing about the answer: an unseen item
  is answered at chance 1/k in expectation, whatever the learner knows.
- **grammar** (inference; e.g. the article of a noun decided by its class or ending):
  the rule gives answer `f mod k` to feature f, and exactly round(p·S) of the seen and
  round(p·(N − S)) of the unseen items, p = `irregular_fraction`, are exceptions whose
  answer is drawn uniformly from the k − 1 answers the rule does not give. Which items
  are exceptions and which answers they take are drawn from the generator.

`unseen_ceiling` is the best expected accuracy on the unseen items of any learner that
answers an unseen item from its feature alone (an unseen item's own parameters are never
trained): Σ_f max_a #{unseen items of feature f with answer a} / (N − S). For grammar
it is at least the regular share of the unseen items (answering every feature by the
rule scores exactly that), and above it where, in some feature, the exceptions sharing
one answer outnumber its regular items (a feature with few unseen items): e.g. 0.822 on
average at 32 unseen items, F = 8 and p = 0.2, against a regular share of 26/32 = 0.8125.
For vocabulary it is the best lucky guess, while the expected accuracy is 1/k (it
falls to 1/k as the unseen items per feature grow).

Worked example (k = 2 answers, F = 2 features, 4 seen and 4 unseen items, a quarter of
each split irregular):

    >>> rng = torch.Generator().manual_seed(0)
    >>> grammar = grammar_task(4, 4, answers=2, features=2, irregular_fraction=0.25, rng=rng)
    >>> grammar.features.tolist()
    [0, 1, 1, 0, 1, 1, 1, 1]
    >>> grammar.answers.tolist()  # the rule gives f mod 2; items 1 and 6 are exceptions
    [0, 0, 1, 0, 1, 1, 0, 1]
    >>> grammar.irregular.tolist()
    [False, True, False, False, False, False, True, False]
    >>> grammar.unseen_ceiling()  # the rule answers 3 of the 4 unseen items
    0.75
    >>> vocabulary = vocabulary_task(4, 4, answers=2, features=2, rng=rng)
    >>> vocabulary.answers.tolist(), vocabulary.irregular.any().item()
    ([1, 0, 1, 0, 1, 1, 0, 1], False)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

TaskName = Literal["vocabulary", "grammar"]
TASKS: tuple[TaskName, ...] = ("vocabulary", "grammar")


@dataclass(frozen=True)
class TeachingTask:
    """Items with a hidden feature and a correct answer; the first `seen_items` are taught.

    features:  (N,) long, each item's hidden feature in [0, feature_count).
    answers:   (N,) long, each item's correct answer in [0, answer_count).
    irregular: (N,) bool, the grammar exceptions (all False for vocabulary).
    """

    name: TaskName
    features: torch.Tensor
    answers: torch.Tensor
    irregular: torch.Tensor
    seen_items: int
    answer_count: int
    feature_count: int

    @property
    def item_count(self) -> int:
        return int(self.answers.numel())

    @property
    def unseen(self) -> slice:
        """The items only ever tested."""
        return slice(self.seen_items, self.item_count)

    def unseen_ceiling(self) -> float:
        """The best expected accuracy on the unseen items from their features alone."""
        features, answers = self.features[self.unseen], self.answers[self.unseen]
        counts = torch.zeros(self.feature_count, self.answer_count, dtype=torch.long)
        counts.index_put_((features, answers), torch.ones_like(answers), accumulate=True)
        return float(counts.max(dim=1).values.sum()) / max(1, answers.numel())


def rule_answers(features: torch.Tensor, answers: int) -> torch.Tensor:
    """The grammar rule's answer for each feature: f mod k. (N,) long."""
    return features % answers


def vocabulary_task(
    seen_items: int, unseen_items: int, *, answers: int, features: int, rng: torch.Generator
) -> TeachingTask:
    """Items whose answers and features are independent uniform draws."""
    count = seen_items + unseen_items
    item_features = torch.randint(features, (count,), generator=rng)
    item_answers = torch.randint(answers, (count,), generator=rng)
    return TeachingTask(
        name="vocabulary",
        features=item_features,
        answers=item_answers,
        irregular=torch.zeros(count, dtype=torch.bool),
        seen_items=seen_items,
        answer_count=answers,
        feature_count=features,
    )


def grammar_task(
    seen_items: int,
    unseen_items: int,
    *,
    answers: int,
    features: int,
    irregular_fraction: float,
    rng: torch.Generator,
) -> TeachingTask:
    """Items answered by the rule f mod k, except exactly round(p·S) seen and round(p·U)
    unseen ones, which take one of the other k − 1 answers."""
    if answers < 2 and irregular_fraction > 0:
        raise ValueError("an exception needs an answer other than the rule's: give k ≥ 2")
    count = seen_items + unseen_items
    item_features = torch.randint(features, (count,), generator=rng)
    item_answers = rule_answers(item_features, answers)
    irregular = torch.zeros(count, dtype=torch.bool)
    for start, size in ((0, seen_items), (seen_items, unseen_items)):
        exceptions = round(irregular_fraction * size)
        chosen = torch.randperm(size, generator=rng)[:exceptions] + start
        irregular[chosen] = True
    # An exception's answer: the rule's shifted by 1 … k − 1, uniformly.
    shift = torch.randint(1, max(2, answers), (count,), generator=rng)
    item_answers = torch.where(irregular, (item_answers + shift) % answers, item_answers)
    return TeachingTask(
        name="grammar",
        features=item_features,
        answers=item_answers,
        irregular=irregular,
        seen_items=seen_items,
        answer_count=answers,
        feature_count=features,
    )
