"""`interactive_teaching`: a learner taught from +1/−1 feedback alone on a vocabulary task
and a grammar task: learning curves, generalization to unseen items, and retention after
a delay, against the teacher's noise and strategy.

Study: "Robots and Children that Learn Together: Improving Knowledge Retention by
Teaching Peer-Like Interactive Robots" (Tarakli, Vinanzi, Moore & Di Nuovo, arXiv
2506.18365, 2025). **What the paper reports** (its abstract; nothing more was found):
58 primary-school children taught a robot that learns by interactive RL from their
evaluative feedback, on French vocabulary (memorization) and grammar rules (inference);
teaching the robot gave significantly higher retention gains than self-practice,
especially on the grammar task. Its RL algorithm, states, rewards, word list, rule, test
delay and effect sizes were **not found**, so memlab quotes none of them.

**This reproduces the learner, not the children's retention gains**: the human study
cannot be rerun, and nothing here models a child. Everything below is memlab's choice,
built from the interactive-RL literature the notes cite (shared/research/seed-details.md
§3):

- Tasks (`core.data.teaching_tasks`): k answers per item; vocabulary answers independent
  of the items' hidden features; grammar answers given by the feature (f mod k) except
  for a fraction of irregular items. `seen_items` are taught, `unseen_items` only tested.
- Learners (`core.training.feedback_learners`, field `learner`): tabular action values
  with softmax or ε-greedy, TAMER-style reward regression, or policy shaping with
  assumed consistency C. Every learner has item-level *and* feature-level parameters and
  runs unchanged on both tasks, so "vocabulary does not transfer" is a finding.
- Teacher (`core.data.simulated_teacher`): accuracy, positive bias, silence, and the
  strategies random, focus_errors, spaced.
- Recall: P(correct) under softmax(score/τ_test), exact (no sampling at test).
- Retention: after the last trial, a delay Δ scales item parameters by exp(−Δ/τ_item)
  and feature parameters by exp(−Δ/τ_rule) (`item_decay_time`, `rule_decay_time`; the
  rule decays more slowly by default); recall is tested at every delay of `delays`.
  Forgetting acts only after teaching, so a strategy can change retention only through
  what was learned by the last trial: no spacing effect on forgetting itself is modelled.

One run teaches both tasks with the same learner and teacher settings, in `replicates`
Monte Carlo replicates: replicate r draws task t from `replicate_generator(seed, r,
"task:<t>")`, the teacher's draws from "teacher:<t>" and the learner's from
"learner:<t>", so runs that differ only in the learner (or the teacher) see the same
items. Curves (mean and 95% interval over replicates):

- `<task>_seen_accuracy` and `<task>_unseen_accuracy` against `trial` (recall after that
  many trials, every `eval_every`); the unseen curve's `theory` is its bound: chance 1/k
  for vocabulary (the exact expectation: answers are independent of features) and, for
  grammar, the best accuracy any learner can reach from an unseen item's feature alone
  (`TeachingTask.unseen_ceiling`: per feature, the count of its most common answer among
  the unseen items, summed, over the unseen items; at least the regular share, 26/32 at
  the defaults, and above it where in some feature the exceptions sharing one answer
  outnumber the regular items; averaged over replicates);
- `grammar_irregular_seen_accuracy` against `trial` (the taught exceptions; absent
  without any);
- `<task>_seen_retention` and `<task>_unseen_retention` against `delay`, the unseen
  ones with the same bounds.

The headline: each task's seen and unseen accuracy after the last trial, its retention
at `headline_delay` and what the delay cost (seen accuracy at delay 0 minus at the
delay, paired), grammar's unseen advantage over vocabulary (paired per replicate), the
forgetting gap (vocabulary's cost minus grammar's, paired) beside the same gap under
equal decay (the control: τ_rule set to τ_item, computed from the same taught tables,
which is exactly what a run with rule_decay_time = item_decay_time gives, since the
decay times act only after teaching), and the bounds. Learning speed: an item is
*learned* when the learner answers it right on 2 presentations in a row (its own
answers while taught, exploration included); `<task>_learned_within_7` is the share of
the seen items learned within 7 presentations, among those whose outcome is known (the
Kaspar robot study's children taught associations in 2–7 trials: a sanity anchor, not
a target), beside `learned_within_7_chance`, the closed form for a learner that never
learns and guesses uniformly; `<task>_trials_to_criterion` is the mean presentations
to learn over the items learned (conditioned on learning, so no claim rests on it).
Example:
`{"kind": "interactive_teaching", "learner": "policy_shaping", "teacher": {"accuracy":
0.7, "strategy": "focus_errors"}}`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

import torch
from pydantic import Field, field_validator, model_validator

from core.curves import (
    MATRIX_DIM_DEFAULT,
    MATRIX_DIM_SETTING,
    MAX_GRID_POINTS,
    MAX_STEPS_DEFAULT,
    MAX_STEPS_SETTING,
    THEORY_CELLS_DEFAULT,
    THEORY_CELLS_SETTING,
    Curve,
    check_finite_result,
    check_grid,
    curve_from_samples,
    mean_and_interval,
    replicate_generator,
    seeded_steps,
)
from core.data.simulated_teacher import SimulatedTeacher, TeacherSpec
from core.data.teaching_tasks import TASKS, TaskName, TeachingTask, grammar_task, vocabulary_task
from core.registry import register_kind
from core.reporter import Reporter, RunCancelled
from core.specs import ComputedSpec, ComputeLimit, field_error
from core.training.feedback_learners import (
    FeedbackLearner,
    LearnerName,
    LearnerSettings,
    ValueTables,
    recall_probability,
)

# An item is learned when answered right on this many presentations in a row (memlab's
# criterion), and the Kaspar study's range ("learned in 2–7 trials") ends at this many
# presentations.
CRITERION_RUN = 2
KASPAR_WINDOW = 7

Delay = Annotated[float, Field(ge=0, le=1e6)]


class InteractiveTeachingSpec(ComputedSpec):
    """One learner and one teacher on both tasks: learning, transfer and retention."""

    kind: Literal["interactive_teaching"] = "interactive_teaching"
    learner: LearnerName = Field(
        "q_softmax",
        description="q_softmax / q_epsilon_greedy: action values (LMS on item + feature "
        "indicators) acting by softmax or ε-greedy; tamer: regression of the human reward, "
        "greedy; policy_shaping: feedback counts with assumed consistency C (Griffith et "
        "al. 2013). Every learner has item and feature parameters.",
    )
    answers: int = Field(
        4, ge=2, le=1000, description="k, the answers per item (meanings, or article forms)."
    )
    features: int = Field(
        8,
        ge=1,
        le=10_000,
        description="F, the values of the hidden feature (noun classes); grammar answers "
        "f mod k, vocabulary ignores it.",
    )
    seen_items: int = Field(32, ge=1, le=100_000, description="Items taught, per task.")
    unseen_items: int = Field(
        32, ge=1, le=100_000, description="Items only tested (generalization), per task."
    )
    irregular_fraction: float = Field(
        0.2,
        ge=0,
        lt=0.5,
        description="grammar: the share of the seen and of the unseen items that are "
        "exceptions to the rule (below 1/2, or it is no rule).",
    )
    trials: int = Field(
        320, ge=1, le=1_000_000, description="Teaching trials per task (one item each)."
    )
    eval_every: int = Field(
        16,
        ge=1,
        le=1_000_000,
        description=f"Trials between points of the learning curves (at most "
        f"{MAX_GRID_POINTS} points, trial 0 included).",
    )
    item_learning_rate: float = Field(
        0.5, gt=0, le=1, description="LMS learners (q_*, tamer): α of the item table."
    )
    feature_learning_rate: float = Field(
        0.5,
        ge=0,
        le=1,
        description="LMS learners (q_*, tamer): α of the feature table (by default the "
        "item table's: neither is favoured); 0 = an item-only LMS learner. policy_shaping "
        "ignores both rates: it always counts feedback per item and per feature.",
    )
    temperature: float = Field(
        0.2, gt=0, le=100, description="q_softmax: τ of the action softmax while taught."
    )
    epsilon: float = Field(
        0.1, ge=0, le=1, description="q_epsilon_greedy: probability of a random answer."
    )
    consistency: float = Field(
        0.8,
        gt=0.5,
        lt=1,
        description="policy_shaping: the teacher consistency C the learner assumes.",
    )
    test_temperature: float = Field(
        0.25,
        gt=0,
        le=100,
        description="τ_test: recall at test draws the answer from softmax(score/τ_test) "
        "(every learner; a soft read-out is what makes scaled-down parameters forget).",
    )
    delays: tuple[Delay, ...] = Field(
        (0.0, 1.0, 2.0, 4.0, 7.0, 14.0, 28.0, 56.0),
        description="Delays after teaching at which recall is tested (the retention "
        "curve), strictly increasing, in the units of the decay times.",
    )
    headline_delay: float = Field(
        7.0, ge=0, le=1e6, description="The delay the headline reports; one of delays."
    )
    item_decay_time: float = Field(
        7.0, gt=0, le=1e6, description="τ_item: item parameters × exp(−Δ/τ_item)."
    )
    rule_decay_time: float = Field(
        28.0, gt=0, le=1e6, description="τ_rule: feature parameters × exp(−Δ/τ_rule)."
    )
    teacher: TeacherSpec = TeacherSpec()
    replicates: int = Field(
        20,
        ge=1,
        le=1000,
        description="Monte Carlo replicates, each seeded from `seed`: new items, teacher "
        "and learner draws.",
    )

    smoke_fields: ClassVar[dict[str, Any]] = {
        "seen_items": 8,
        "unseen_items": 8,
        "trials": 40,
        "eval_every": 10,
        "delays": (0.0, 7.0),
        "replicates": 2,
    }

    @field_validator("delays")
    @classmethod
    def _check_delays(cls, delays: tuple[float, ...]) -> tuple[float, ...]:
        check_grid(delays)
        return delays

    @model_validator(mode="after")
    def _check(self) -> InteractiveTeachingSpec:
        if self.eval_every > self.trials:
            raise field_error(
                "eval_every",
                f"eval_every ({self.eval_every}) exceeds trials ({self.trials}): the learning "
                "curve would have no point after trial 0",
            )
        points = self.trials // self.eval_every + 1 + (self.trials % self.eval_every > 0)
        if points > MAX_GRID_POINTS:
            raise field_error(
                "eval_every",
                f"{self.trials} trials every {self.eval_every} give {points} "
                f"curve points; at most {MAX_GRID_POINTS}: raise eval_every to at least "
                f"{math.ceil(self.trials / (MAX_GRID_POINTS - 2))}",
            )
        if self.headline_delay not in self.delays:
            raise field_error(
                "headline_delay",
                f"headline_delay {self.headline_delay:g} is not one of delays "
                f"{[float(d) for d in self.delays]}",
            )
        return self

    @property
    def trial_grid(self) -> tuple[int, ...]:
        """Trials after which recall is measured: 0, eval_every, …, and the last trial."""
        grid = list(range(0, self.trials + 1, self.eval_every))
        if grid[-1] != self.trials:
            grid.append(self.trials)
        return tuple(grid)

    def learner_settings(self) -> LearnerSettings:
        return LearnerSettings(
            name=self.learner,
            item_learning_rate=self.item_learning_rate,
            feature_learning_rate=self.feature_learning_rate,
            temperature=self.temperature,
            epsilon=self.epsilon,
            consistency=self.consistency,
        )

    def compute_limits(self) -> tuple[ComputeLimit, ...]:
        """The tables' sides (MATRIX_DIM; each split on its own, the item table having
        seen + unseen rows), the recall tables computed over the run (THEORY_CELLS:
        replicates × 2 tasks × (curve points + delays) × (N + F) × k), and the teaching
        trials (replicates × 2 tasks × trials, MEMLAB_MAX_STEPS; every strategy costs
        O(log S) or less per trial, so the trials bound the work)."""

        def side(value: int, path: str) -> ComputeLimit:
            return ComputeLimit(value, path, MATRIX_DIM_SETTING, MATRIX_DIM_DEFAULT)

        tests = len(self.trial_grid) + len(self.delays)
        items = self.seen_items + self.unseen_items
        cells = self.replicates * len(TASKS) * tests * (items + self.features)
        return (
            side(self.seen_items, "spec.seen_items"),
            side(self.unseen_items, "spec.unseen_items"),
            side(self.features, "spec.features"),
            side(self.answers, "spec.answers"),
            ComputeLimit(
                cells * self.answers,
                "spec.replicates",
                THEORY_CELLS_SETTING,
                THEORY_CELLS_DEFAULT,
            ),
            ComputeLimit(
                self.replicates * len(TASKS) * self.trials,
                "spec.trials",
                MAX_STEPS_SETTING,
                MAX_STEPS_DEFAULT,
            ),
        )


# --- one replicate of one task -------------------------------------------------------------


@dataclass
class TaughtTask:
    """What one replicate of one task measured.

    seen, unseen, irregular_seen: recall after each trial of the trial grid.
    retained_seen, retained_unseen: recall at each delay.
    retained_seen_equal_decay: seen recall at the headline delay with the feature table
    decayed at the item table's rate (the control for the forgetting gap).
    trials_to_criterion: per seen item learned (CRITERION_RUN right answers in a row),
    its presentations up to and including the last of them.
    learned_within_window, decided_within_window: seen items learned within
    KASPAR_WINDOW presentations, and those whose outcome is known by the end (learned
    within the window, or presented at least KASPAR_WINDOW times).
    """

    seen: list[float] = field(default_factory=list)
    unseen: list[float] = field(default_factory=list)
    irregular_seen: list[float] = field(default_factory=list)
    retained_seen: list[float] = field(default_factory=list)
    retained_unseen: list[float] = field(default_factory=list)
    retained_seen_equal_decay: float = math.nan
    trials_to_criterion: list[int] = field(default_factory=list)
    learned_within_window: int = 0
    decided_within_window: int = 0
    unseen_ceiling: float = 0.0

    @property
    def share_learned_within_window(self) -> float:
        """Learned within the window, over the decided items; NaN when none is decided."""
        if self.decided_within_window == 0:
            return math.nan
        return self.learned_within_window / self.decided_within_window


def run_within_window_by_chance(answers: int) -> float:
    """P(CRITERION_RUN right answers in a row within KASPAR_WINDOW presentations) for a
    learner that never learns and answers uniformly at random (p = 1/k per presentation):
    the no-learning baseline of `learned_within_7`. Exact, by the streak's distribution.

    >>> round(run_within_window_by_chance(4), 4)  # k = 4
    0.2815
    """
    p = 1.0 / answers
    streaks = [1.0] + [0.0] * (CRITERION_RUN - 1)  # P(current streak = s, not yet a run)
    done = 0.0
    for _ in range(KASPAR_WINDOW):
        step = [0.0] * CRITERION_RUN
        for streak, mass in enumerate(streaks):
            step[0] += mass * (1 - p)
            if streak + 1 == CRITERION_RUN:
                done += mass * p
            else:
                step[streak + 1] += mass * p
        streaks = step
    return done


def build_task(spec: InteractiveTeachingSpec, name: TaskName, rng: torch.Generator) -> TeachingTask:
    """Task `name` at the spec's sizes."""
    if name == "vocabulary":
        return vocabulary_task(
            spec.seen_items,
            spec.unseen_items,
            answers=spec.answers,
            features=spec.features,
            rng=rng,
        )
    return grammar_task(
        spec.seen_items,
        spec.unseen_items,
        answers=spec.answers,
        features=spec.features,
        irregular_fraction=spec.irregular_fraction,
        rng=rng,
    )


def recall(
    tables: ValueTables, task: TeachingTask, items: torch.Tensor, test_temperature: float
) -> float:
    """Mean P(correct) over `items` (indices into the task); NaN for none."""
    if items.numel() == 0:
        return math.nan
    probability = recall_probability(
        tables, items, task.features[items], task.answers[items], test_temperature
    )
    return float(probability.mean())


def teach_and_test(
    spec: InteractiveTeachingSpec,
    task: TeachingTask,
    replicate: int,
    reporter: Reporter | None = None,
) -> TaughtTask:
    """Teach `task` for spec.trials trials, measuring recall along the way, then test it
    after every delay. At each point of the learning curve, stops with RunCancelled if
    `reporter` asks (a replicate can be up to 10⁶ trials)."""
    seen = torch.arange(task.seen_items)
    unseen = torch.arange(task.seen_items, task.item_count)
    irregular_seen = seen[task.irregular[seen]]
    teacher = SimulatedTeacher(
        spec.teacher,
        task.seen_items,
        replicate_generator(spec.seed, replicate, f"teacher:{task.name}"),
    )
    learner = FeedbackLearner(
        spec.learner_settings(),
        task.item_count,
        task.feature_count,
        task.answer_count,
        replicate_generator(spec.seed, replicate, f"learner:{task.name}"),
    )
    measured = TaughtTask(unseen_ceiling=task.unseen_ceiling())
    features, answers = task.features.tolist(), task.answers.tolist()
    presentations = [0] * task.seen_items
    streak = [0] * task.seen_items
    learned_at = [0] * task.seen_items  # the presentation that completed the run; 0: not yet
    checkpoints = set(spec.trial_grid)

    def measure() -> None:
        tables, tau = learner.tables, spec.test_temperature
        measured.seen.append(recall(tables, task, seen, tau))
        measured.unseen.append(recall(tables, task, unseen, tau))
        if irregular_seen.numel():
            measured.irregular_seen.append(recall(tables, task, irregular_seen, tau))

    measure()
    for trial in range(spec.trials):
        item = teacher.next_item()
        answer = learner.act(item, features[item])
        right = answer == answers[item]
        presentations[item] += 1
        streak[item] = streak[item] + 1 if right else 0
        if streak[item] == CRITERION_RUN and not learned_at[item]:
            learned_at[item] = presentations[item]
            measured.trials_to_criterion.append(presentations[item])
        learner.update(item, features[item], answer, teacher.feedback(trial, item, right))
        if trial + 1 in checkpoints:
            measure()
            if reporter is not None and reporter.should_stop():
                raise RunCancelled(trial + 1)
    for item in range(task.seen_items):
        early = 0 < learned_at[item] <= KASPAR_WINDOW
        measured.learned_within_window += early
        measured.decided_within_window += early or presentations[item] >= KASPAR_WINDOW
    tau = spec.test_temperature
    for delay in spec.delays:
        item_factor = math.exp(-delay / spec.item_decay_time)
        forgotten = learner.tables.decayed(item_factor, math.exp(-delay / spec.rule_decay_time))
        measured.retained_seen.append(recall(forgotten, task, seen, tau))
        measured.retained_unseen.append(recall(forgotten, task, unseen, tau))
        if delay == spec.headline_delay:
            equal = learner.tables.decayed(item_factor, item_factor)
            measured.retained_seen_equal_decay = recall(equal, task, seen, tau)
    return measured


# --- the run ------------------------------------------------------------------------------


@register_kind(
    InteractiveTeachingSpec,
    "A tabular learner taught from ±1 feedback by a simulated teacher on vocabulary and "
    "grammar: learning curves, unseen-item generalization and retention after a delay.",
)
def run_interactive_teaching(spec: InteractiveTeachingSpec, reporter: Reporter) -> dict[str, Any]:
    """Both tasks in every replicate; curves and headline over the replicates."""
    steps = [(r, name) for r in range(spec.replicates) for name in TASKS]
    taught: dict[TaskName, list[TaughtTask]] = {name: [] for name in TASKS}

    def describe(step: tuple[int, TaskName]) -> str:
        return f"replicate {step[0] + 1}/{spec.replicates}, {step[1]}"

    for _, (r, name) in seeded_steps(steps, reporter, describe):
        task = build_task(spec, name, replicate_generator(spec.seed, r, f"task:{name}"))
        taught[name].append(teach_and_test(spec, task, r, reporter))
    return _result(spec, taught)


def unseen_bound(
    spec: InteractiveTeachingSpec, name: TaskName, runs: Sequence[TaughtTask]
) -> float:
    """The unseen curves' theory: chance 1/k for vocabulary (its exact expectation), the
    feature-only ceiling averaged over replicates for grammar."""
    if name == "vocabulary":
        return 1.0 / spec.answers
    return math.fsum(run.unseen_ceiling for run in runs) / len(runs)


def _result(
    spec: InteractiveTeachingSpec, taught: dict[TaskName, list[TaughtTask]]
) -> dict[str, Any]:
    trials, delays = spec.trial_grid, spec.delays
    curves: list[Curve] = []
    for name in TASKS:
        runs = taught[name]
        bound = unseen_bound(spec, name, runs)
        curves += [
            curve_from_samples(f"{name}_seen_accuracy", "trial", trials, [r.seen for r in runs]),
            curve_from_samples(
                f"{name}_unseen_accuracy",
                "trial",
                trials,
                [r.unseen for r in runs],
                [bound] * len(trials),
            ),
        ]
        if runs[0].irregular_seen:
            curves.append(
                curve_from_samples(
                    f"{name}_irregular_seen_accuracy",
                    "trial",
                    trials,
                    [r.irregular_seen for r in runs],
                )
            )
        curves += [
            curve_from_samples(
                f"{name}_seen_retention", "delay", delays, [r.retained_seen for r in runs]
            ),
            curve_from_samples(
                f"{name}_unseen_retention",
                "delay",
                delays,
                [r.retained_unseen for r in runs],
                [bound] * len(delays),
            ),
        ]
    result = {
        "curves": [curve.as_json() for curve in curves],
        "headline": _headline(spec, taught),
        "settings": _settings(spec),
    }
    return check_finite_result(result)


def _headline(
    spec: InteractiveTeachingSpec, taught: dict[TaskName, list[TaughtTask]]
) -> dict[str, float]:
    """Per task: final seen and unseen recall, the unseen bound, retention at the headline
    delay and what the delay cost, learning speed; grammar's unseen advantage, and the
    forgetting gap beside its equal-decay control."""
    at_delay = spec.delays.index(spec.headline_delay)
    headline: dict[str, float] = {
        "chance": 1.0 / spec.answers,
        f"learned_within_{KASPAR_WINDOW}_chance": run_within_window_by_chance(spec.answers),
    }
    for name in TASKS:
        runs = taught[name]
        headline |= mean_and_interval(f"{name}_seen_accuracy", [r.seen[-1] for r in runs])
        headline |= mean_and_interval(f"{name}_unseen_accuracy", [r.unseen[-1] for r in runs])
        headline[f"{name}_unseen_bound"] = unseen_bound(spec, name, runs)
        if runs[0].irregular_seen:
            headline |= mean_and_interval(
                f"{name}_irregular_seen_accuracy", [r.irregular_seen[-1] for r in runs]
            )
        headline |= mean_and_interval(
            f"{name}_seen_retention", [r.retained_seen[at_delay] for r in runs]
        )
        headline |= mean_and_interval(
            f"{name}_unseen_retention", [r.retained_unseen[at_delay] for r in runs]
        )
        headline |= mean_and_interval(f"{name}_seen_forgetting", [_cost(r, at_delay) for r in runs])
        criterion = [r.trials_to_criterion for r in runs if r.trials_to_criterion]
        if criterion:
            headline |= mean_and_interval(
                f"{name}_trials_to_criterion", [sum(c) / len(c) for c in criterion]
            )
        shares = [r.share_learned_within_window for r in runs]
        if known := [share for share in shares if not math.isnan(share)]:
            headline |= mean_and_interval(f"{name}_learned_within_{KASPAR_WINDOW}", known)
    pairs = list(zip(taught["vocabulary"], taught["grammar"], strict=True))
    headline |= mean_and_interval(
        "unseen_advantage",
        [grammar.unseen[-1] - vocabulary.unseen[-1] for vocabulary, grammar in pairs],
    )
    headline |= mean_and_interval(
        "seen_forgetting_gap",
        [_cost(vocabulary, at_delay) - _cost(grammar, at_delay) for vocabulary, grammar in pairs],
    )
    headline |= mean_and_interval(
        "seen_forgetting_gap_equal_decay",
        [
            _cost(vocabulary, at_delay, equal=True) - _cost(grammar, at_delay, equal=True)
            for vocabulary, grammar in pairs
        ],
    )
    return headline


def _cost(run: TaughtTask, at_delay: int, *, equal: bool = False) -> float:
    """Seen recall lost between the last trial (no delay) and delay `at_delay` (an index
    of delays, the headline's); under equal decay, the feature table decayed at the item
    table's rate."""
    retained = run.retained_seen_equal_decay if equal else run.retained_seen[at_delay]
    return run.seen[-1] - retained


def _settings(spec: InteractiveTeachingSpec) -> dict[str, Any]:
    """The choices that decide whether the effects show, and what is whose."""
    return {
        "learner": spec.learner,
        "answers": spec.answers,
        "features": spec.features,
        "seen_items": spec.seen_items,
        "unseen_items": spec.unseen_items,
        "irregular_fraction": spec.irregular_fraction,
        "trials": spec.trials,
        "teacher": spec.teacher.model_dump(mode="json"),
        "test_temperature": spec.test_temperature,
        "item_decay_time": spec.item_decay_time,
        "rule_decay_time": spec.rule_decay_time,
        "headline_delay": spec.headline_delay,
        "replicates": spec.replicates,
        "recall": "P(correct) under softmax(score/test_temperature), exact; score = "
        "item_values[i, a] + feature_values[feature(i), a] for every learner",
        "bounds": "vocabulary unseen: chance 1/k (exact expectation); grammar unseen: the "
        "best accuracy from an unseen item's feature alone (per feature the count of its "
        "most common unseen answer, summed, over the unseen items; at least the regular "
        "share)",
        "learned": f"a seen item answered right on {CRITERION_RUN} presentations in a row "
        "(the learner's own answers, exploration included); learned_within_"
        f"{KASPAR_WINDOW}: the share learned within {KASPAR_WINDOW} presentations among "
        f"items learned by then or presented at least {KASPAR_WINDOW} times; its _chance: "
        "the same for a learner that never learns and guesses uniformly (closed form)",
        "forgetting_gap": "vocabulary's seen forgetting minus grammar's at headline_delay, "
        "paired; _equal_decay: the same with the feature table decayed at the item "
        "table's rate (the control: equal to a run with rule_decay_time = "
        "item_decay_time, as decay acts only after teaching)",
        "seeding": "task, teacher and learner of replicate r each from "
        "replicate_generator(seed, r, '<stream>:<task>'), shared across learners",
        "sources": {
            "paper": "children taught a robot by evaluative feedback on French vocabulary "
            "and grammar; higher retention gains than self-practice, especially on grammar "
            "(abstract only; no algorithm, delay or effect size found, none quoted)",
            "kaspar_anchor": "children taught a robot toy-name/location associations, all "
            "learned in 2-7 trials (HAL hal-02408941): a sanity range, not a target",
            "memlab": "the tasks, learners, teacher noise and strategies, recall read-out, "
            "forgetting model and bounds; this reproduces the learner, not the children's "
            "retention gains",
        },
    }
