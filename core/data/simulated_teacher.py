"""A simulated teacher that gives a learner +1/−1 feedback (or none), with tunable
accuracy, positive bias, silence and a strategy for which item to ask next.

The noise model (memlab's; the study's children were not modelled, and Thomaz &
Breazeal's finding that human feedback is positively biased is what `positive_bias`
lets one set). With a = `accuracy`, b = `positive_bias`, s = `silence`, on every trial,
independently:

- with probability s the teacher says nothing (feedback 0: the learner does not update);
- otherwise it gives the wrong feedback (−1 for a right answer, +1 for a wrong one) with
  probability

      P(error | right answer) = 2·(1 − a)·(1 − b)     (unjust criticism)
      P(error | wrong answer) = 2·(1 − a)·b           (false praise)

  and the right feedback otherwise.

So **a is the probability that the feedback, when given, is right**: exactly so on
every answer when b = 1/2, and on average over a right and a wrong answer for any b
(the two error rates above average to 1 − a); b is the share of the errors that are
false praise, so b > 1/2 moves the errors onto wrong answers. Both error rates must be
at most 1: 2·(1 − a)·max(b, 1 − b) ≤ 1 (a validator refuses the rest). Hence
P(+1 | right) = (1 − s)·(1 − 2(1 − a)(1 − b)) and P(+1 | wrong) = (1 − s)·2(1 − a)b
(`positive_feedback_probability`), and P(the feedback is right | given) is
`feedback_accuracy`.

The teacher forms its judgement (the feedback it would give) on every trial, silent or
not, and its strategy acts on that judgement: a silent trial still moves focus_errors'
list and the spaced schedule, as a teacher who noticed the answer but said nothing.

Strategies (which seen item to ask on each trial):

- `random`: uniformly among the seen items.
- `focus_errors`: uniformly among the items the teacher last judged wrong or has not
  asked yet; uniformly among all when there are none. It acts on its own judgement, so
  its errors steer it too. O(1) per trial (a list with swap-removal).
- `spaced`: an expanding schedule (Leitner-like): an item judged right n times in a row
  is due again `spacing`·2^(n−1) trials later, an item judged wrong is due on the next
  trial; the teacher asks the item due earliest (new items are due at once, in an order
  drawn once), so it introduces every item before it reviews. O(log S) per trial (a
  heap of due dates).
"""

from __future__ import annotations

import heapq
from typing import Literal

import torch
from pydantic import Field, model_validator

from core.spec_model import SpecModel, field_error

Strategy = Literal["random", "focus_errors", "spaced"]
STRATEGIES: tuple[Strategy, ...] = ("random", "focus_errors", "spaced")
# spaced: the interval stops doubling here (2³⁰ trials is beyond any run).
MAX_DOUBLINGS = 30


class TeacherSpec(SpecModel):
    """How the simulated teacher judges answers and picks items."""

    accuracy: float = Field(
        0.9,
        ge=0,
        le=1,
        description="a: the probability that the feedback, when given, is right (exactly, "
        "on every answer, when positive_bias = 0.5; otherwise averaged over a right and a "
        "wrong answer). Errors: P(−1 | right answer) = 2(1 − a)(1 − b), P(+1 | wrong "
        "answer) = 2(1 − a)b.",
    )
    positive_bias: float = Field(
        0.5,
        ge=0,
        le=1,
        description="b: the share of the teacher's errors that are false praise (+1 for a "
        "wrong answer) rather than unjust criticism; 0.5 = unbiased, above 0.5 positively "
        "biased as Thomaz & Breazeal observed in human teachers. Needs 2(1 − a)·max(b, "
        "1 − b) ≤ 1.",
    )
    silence: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Probability the teacher gives no feedback on a trial (the learner "
        "does not update then).",
    )
    strategy: Strategy = Field(
        "random",
        description="random: any seen item; focus_errors: the items last judged wrong (or "
        "not yet asked); spaced: an expanding schedule, due again spacing·2^(n−1) trials "
        "after n right answers in a row.",
    )
    spacing: int = Field(
        4,
        ge=1,
        le=10_000,
        description="spaced: trials until an item judged right once is due again.",
    )

    @model_validator(mode="after")
    def _errors_are_probabilities(self) -> TeacherSpec:
        worst = 2 * (1 - self.accuracy) * max(self.positive_bias, 1 - self.positive_bias)
        if worst > 1 + 1e-12:
            lowest = 1 - 1 / (2 * max(self.positive_bias, 1 - self.positive_bias))
            raise field_error(
                "accuracy",
                f"accuracy {self.accuracy:g} with positive_bias {self.positive_bias:g} would "
                f"err on {worst:.3g} of one kind of answer: raise accuracy to at least "
                f"{lowest:.3g} or move positive_bias toward 0.5",
            )
        return self


def error_probability(spec: TeacherSpec, answer_is_right: bool) -> float:
    """P(the feedback is wrong | it is given): unjust criticism of a right answer, or
    false praise of a wrong one."""
    share = (1 - spec.positive_bias) if answer_is_right else spec.positive_bias
    return min(1.0, 2 * (1 - spec.accuracy) * share)


def feedback_accuracy(spec: TeacherSpec, answer_is_right: bool) -> float:
    """P(the feedback is right | it is given) for a right (or wrong) answer."""
    return 1 - error_probability(spec, answer_is_right)


def positive_feedback_probability(spec: TeacherSpec, answer_is_right: bool) -> float:
    """P(+1) for an answer that is right (or wrong), silence included."""
    wrong = error_probability(spec, answer_is_right)
    return (1 - spec.silence) * ((1 - wrong) if answer_is_right else wrong)


class SimulatedTeacher:
    """Asks the seen items 0 … S−1 in its strategy's order and judges the answers.

    Every draw comes from `rng`: one uniform to pick the item and two per judgement
    (silence, error), after one permutation at the start, so a seed fixes the teacher.
    """

    def __init__(self, spec: TeacherSpec, seen_items: int, rng: torch.Generator) -> None:
        if seen_items < 1:
            raise ValueError("the teacher needs at least one item to teach")
        self.spec = spec
        self.seen_items = seen_items
        self.rng = rng
        self._error_if_right = error_probability(spec, answer_is_right=True)
        self._error_if_wrong = error_probability(spec, answer_is_right=False)
        # focus_errors: the items not last judged right (all, at first), and where each
        # sits in that list (−1: not in it), for O(1) removal.
        self._open = list(range(seen_items))
        self._position = list(range(seen_items))
        # spaced: when each item is due, its streak of "right" judgements, the order in
        # which items due at the same trial are asked, and a heap of (due, order, item)
        # holding each item's current due date (older entries are skipped when seen).
        self._due = [0] * seen_items
        self._streak = [0] * seen_items
        self._tie_order = torch.randperm(seen_items, generator=rng).tolist()
        self._schedule = [(0, self._tie_order[i], i) for i in range(seen_items)]
        heapq.heapify(self._schedule)

    def next_item(self) -> int:
        """The seen item to ask next."""
        pick = float(torch.rand((), generator=self.rng, dtype=torch.float64))
        if self.spec.strategy == "random":
            return min(int(pick * self.seen_items), self.seen_items - 1)
        if self.spec.strategy == "focus_errors":
            size = len(self._open) or self.seen_items
            index = min(int(pick * size), size - 1)
            return self._open[index] if self._open else index
        while self._schedule[0][0] != self._due[self._schedule[0][2]]:
            heapq.heappop(self._schedule)  # an item rescheduled since this entry
        return self._schedule[0][2]

    def feedback(self, trial: int, item: int, answer_is_right: bool) -> int:
        """+1, −1, or 0 (silent) for the learner's answer to `item` on `trial` (0-based);
        records the judgement for the strategy, silent or not."""
        silent, error = torch.rand(2, generator=self.rng, dtype=torch.float64).tolist()
        error_rate = self._error_if_right if answer_is_right else self._error_if_wrong
        judged_right = answer_is_right != (error < error_rate)
        self._record(trial, item, judged_right)
        if silent < self.spec.silence:
            return 0
        return 1 if judged_right else -1

    def _record(self, trial: int, item: int, judged_right: bool) -> None:
        """Update focus_errors' open list and the spaced schedule with a judgement."""
        listed = self._position[item] >= 0
        if judged_right and listed:
            last = self._open.pop()
            if last != item:
                self._open[self._position[item]] = last
                self._position[last] = self._position[item]
            self._position[item] = -1
        elif not judged_right and not listed:
            self._position[item] = len(self._open)
            self._open.append(item)
        if judged_right:
            self._streak[item] += 1
            doublings = min(self._streak[item] - 1, MAX_DOUBLINGS)
            self._due[item] = trial + self.spec.spacing * 2**doublings
        else:
            self._streak[item] = 0
            self._due[item] = trial + 1
        heapq.heappush(self._schedule, (self._due[item], self._tie_order[item], item))
        if len(self._schedule) > 4 * self.seen_items:  # drop the outdated entries
            self._schedule = [(self._due[i], self._tie_order[i], i) for i in range(self.seen_items)]
            heapq.heapify(self._schedule)
