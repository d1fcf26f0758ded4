"""`interactive_teaching`: the two tasks, the teacher's noise model and strategies, the
learners' updates, a rule learner beating an item learner on unseen items, retention
under forgetting, and bad specs refused at the field to change."""

from __future__ import annotations

import doctest
import math
from typing import Any

import pytest
import torch
from pydantic import ValidationError

import core.data.teaching_tasks
import core.experiments.interactive_teaching
from core.curves import MATRIX_DIM_SETTING, THEORY_CELLS_SETTING, replicate_generator
from core.data.simulated_teacher import (
    SimulatedTeacher,
    TeacherSpec,
    feedback_accuracy,
    positive_feedback_probability,
)
from core.data.teaching_tasks import grammar_task, rule_answers, vocabulary_task
from core.experiments.interactive_teaching import (
    InteractiveTeachingSpec,
    build_task,
    run_interactive_teaching,
    run_within_window_by_chance,
    teach_and_test,
)
from core.reporter import InMemoryReporter, RunCancelled
from core.training.feedback_learners import FeedbackLearner, LearnerName, LearnerSettings

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _spec(**fields: Any) -> InteractiveTeachingSpec:
    return InteractiveTeachingSpec.model_validate({"kind": "interactive_teaching", **fields})


def _headline(**fields: Any) -> dict[str, float]:
    return dict(run_interactive_teaching(_spec(**fields), InMemoryReporter())["headline"])


def _learner(name: LearnerName, seed: int = 0, **settings: float) -> FeedbackLearner:
    """A learner with 3 items, 2 features and 4 answers, at the spec's defaults."""
    defaults = _spec().learner_settings()
    chosen = LearnerSettings(
        name=name,
        item_learning_rate=settings.get("item_learning_rate", defaults.item_learning_rate),
        feature_learning_rate=settings.get("feature_learning_rate", defaults.feature_learning_rate),
        temperature=settings.get("temperature", defaults.temperature),
        epsilon=settings.get("epsilon", defaults.epsilon),
        consistency=settings.get("consistency", defaults.consistency),
    )
    return FeedbackLearner(chosen, 3, 2, 4, torch.Generator().manual_seed(seed))


# --- tasks ------------------------------------------------------------------------------


def test_the_worked_example_in_the_tasks_docstring_holds() -> None:
    assert doctest.testmod(core.data.teaching_tasks).failed == 0


def test_grammar_items_follow_the_rule_except_an_exact_share_of_each_split() -> None:
    task = grammar_task(
        40, 20, answers=4, features=8, irregular_fraction=0.25, rng=torch.Generator().manual_seed(3)
    )
    regular = ~task.irregular
    assert torch.equal(task.answers[regular], rule_answers(task.features[regular], 4))
    assert (task.answers[task.irregular] != rule_answers(task.features[task.irregular], 4)).all()
    assert int(task.irregular[:40].sum()) == 10 and int(task.irregular[40:].sum()) == 5
    # Regulars are the majority of every feature here, so the ceiling is their share.
    assert task.unseen_ceiling() == pytest.approx(0.75)


def test_vocabulary_answers_are_independent_of_the_features() -> None:
    """With many unseen items per feature, the best feature-only answer key falls to
    chance 1/k; a grammar task of the same size keeps its rule's share."""
    rng = torch.Generator().manual_seed(0)
    vocabulary = vocabulary_task(1, 20_000, answers=4, features=2, rng=rng)
    grammar = grammar_task(1, 20_000, answers=4, features=2, irregular_fraction=0.2, rng=rng)
    assert not vocabulary.irregular.any()
    assert vocabulary.unseen_ceiling() == pytest.approx(0.25, abs=0.01)
    assert grammar.unseen_ceiling() == pytest.approx(0.8, abs=1e-4)


# --- the teacher -----------------------------------------------------------------------


def _shares(spec: TeacherSpec, right: bool, draws: int = 20_000) -> dict[int, float]:
    teacher = SimulatedTeacher(spec, 1, torch.Generator().manual_seed(1))
    feedback = [teacher.feedback(0, 0, right) for _ in range(draws)]
    return {value: feedback.count(value) / draws for value in (1, 0, -1)}


def _close(share: float, expected: float, draws: int = 20_000) -> bool:
    return abs(share - expected) < 4.5 * math.sqrt(expected * (1 - expected) / draws) + 1e-12


@pytest.mark.parametrize("accuracy", [0.6, 0.9])
def test_an_unbiased_teachers_feedback_is_right_with_probability_accuracy(
    accuracy: float,
) -> None:
    spec = TeacherSpec(accuracy=accuracy, positive_bias=0.5, silence=0.2)
    for right in (True, False):
        shares = _shares(spec, right)
        given = shares[1] + shares[-1]
        assert _close(shares[0], 0.2)
        assert feedback_accuracy(spec, right) == pytest.approx(accuracy)
        assert abs(shares[1 if right else -1] / given - accuracy) < 0.015, right


def test_a_biased_teachers_errors_fall_on_wrong_answers_and_average_to_accuracy() -> None:
    """positive_bias b = 0.8: of the errors, 80% are false praise (per pair of answers),
    P(error | right) = 2(1 − a)(1 − b), P(error | wrong) = 2(1 − a)b."""
    spec = TeacherSpec(accuracy=0.75, positive_bias=0.8, silence=0.0)
    on_right, on_wrong = _shares(spec, True), _shares(spec, False)
    assert _close(on_right[-1], 2 * 0.25 * 0.2)  # unjust criticism
    assert _close(on_wrong[1], 2 * 0.25 * 0.8)  # false praise
    assert (on_right[1] + on_wrong[-1]) / 2 == pytest.approx(0.75, abs=0.01)
    assert (feedback_accuracy(spec, True) + feedback_accuracy(spec, False)) / 2 == 0.75
    for right, shares in ((True, on_right), (False, on_wrong)):
        assert _close(shares[1], positive_feedback_probability(spec, right))


def test_a_perfect_teacher_always_tells_the_truth_and_a_flatterer_always_praises() -> None:
    perfect = SimulatedTeacher(TeacherSpec(accuracy=1.0), 1, torch.Generator().manual_seed(0))
    assert [perfect.feedback(0, 0, right) for right in (True, False) * 50] == [1, -1] * 50
    flatterer = TeacherSpec(accuracy=0.5, positive_bias=1.0)  # every error is praise
    teacher = SimulatedTeacher(flatterer, 1, torch.Generator().manual_seed(0))
    assert {teacher.feedback(0, 0, answer_is_right=False) for _ in range(50)} == {1}
    assert positive_feedback_probability(flatterer, answer_is_right=False) == 1.0
    assert positive_feedback_probability(flatterer, answer_is_right=True) == 1.0


def test_focus_on_errors_asks_only_items_not_yet_judged_right() -> None:
    teacher = SimulatedTeacher(
        TeacherSpec(accuracy=1.0, strategy="focus_errors"), 6, torch.Generator().manual_seed(2)
    )
    learned: set[int] = set()
    for trial in range(40):
        item = teacher.next_item()
        assert item not in learned
        right = item % 2 == 0  # the learner knows the even items
        teacher.feedback(trial, item, right)
        if right:
            learned.add(item)
    assert learned == {0, 2, 4}


def test_spaced_teaching_introduces_every_item_then_reviews_the_wrong_ones_first() -> None:
    teacher = SimulatedTeacher(
        TeacherSpec(accuracy=1.0, strategy="spaced", spacing=4), 5, torch.Generator().manual_seed(2)
    )
    first = []
    for trial in range(5):
        item = teacher.next_item()
        first.append(item)
        teacher.feedback(trial, item, answer_is_right=item != 3)
    assert sorted(first) == [0, 1, 2, 3, 4]
    assert teacher.next_item() == 3  # due one trial after its error, before any review


# --- the learners ------------------------------------------------------------------------


def test_an_lms_learner_moves_both_tables_by_their_rates_toward_the_feedback() -> None:
    learner = _learner("q_softmax", item_learning_rate=0.5, feature_learning_rate=0.25)
    learner.update(item=1, feature=0, answer=2, feedback=1)
    assert learner.tables.item_values[1, 2] == 0.5
    assert learner.tables.feature_values[0, 2] == 0.25
    learner.update(item=1, feature=0, answer=2, feedback=1)  # error 1 − 0.75
    assert learner.tables.item_values[1, 2] == 0.5 + 0.5 * 0.25
    learner.update(item=1, feature=0, answer=2, feedback=0)  # silence
    assert learner.tables.item_values[1, 2] == 0.625


def test_policy_shaping_gives_c_to_the_delta_over_c_to_the_delta_plus_its_complement() -> None:
    learner = _learner("policy_shaping", consistency=0.8)
    for feedback in (1, 1, 1, -1):  # Δ = 2 on the item and on its feature: Δ = 4 in all
        learner.update(item=0, feature=0, answer=1, feedback=feedback)
    score = learner.tables.scores(torch.tensor([0]), torch.tensor([0]))[0, 1]
    assert torch.sigmoid(score) == pytest.approx(0.8**4 / (0.8**4 + 0.2**4))
    # An unseen item of the same feature carries half the evidence (its feature's Δ = 2).
    unseen = learner.tables.scores(torch.tensor([1]), torch.tensor([0]))[0, 1]
    assert torch.sigmoid(unseen) == pytest.approx(0.8**2 / (0.8**2 + 0.2**2))


def _answer_shares(learner: FeedbackLearner, draws: int = 20_000) -> list[float]:
    answers = [learner.act(item=0, feature=0) for _ in range(draws)]
    return [answers.count(a) / draws for a in range(4)]


def test_epsilon_greedy_explores_at_rate_epsilon_spread_over_all_answers() -> None:
    learner = _learner("q_epsilon_greedy", epsilon=0.2)
    learner.tables.item_values[0, 2] = 1.0
    shares = _answer_shares(learner)
    # Greedy on answer 2 with 1 − ε, plus its share ε/k of the random answers.
    for answer, expected in enumerate([0.05, 0.05, 0.85, 0.05]):
        assert abs(shares[answer] - expected) < 0.012, answer


def test_softmax_samples_answers_in_proportion_to_exp_score_over_temperature() -> None:
    learner = _learner("q_softmax", temperature=0.5)
    learner.tables.item_values[0] = torch.tensor([0.0, 0.5, 1.0, -1.0], dtype=torch.float64)
    expected = torch.softmax(learner.tables.item_values[0] / 0.5, dim=0).tolist()
    for share, probability in zip(_answer_shares(learner), expected, strict=True):
        assert abs(share - probability) < 0.012


def test_policy_shaping_samples_answers_in_proportion_to_p_optimal() -> None:
    learner = _learner("policy_shaping", consistency=0.8)
    deltas = [2, 0, -1, 1]  # #(+1) − #(−1) per answer, all on the item
    for answer, delta in enumerate(deltas):
        for _ in range(abs(delta)):
            learner.update(item=0, feature=1, answer=answer, feedback=1 if delta > 0 else -1)
    optimal = [0.8**d / (0.8**d + 0.2**d) for d in deltas]
    for share, weight in zip(_answer_shares(learner), optimal, strict=True):
        assert abs(share - weight / sum(optimal)) < 0.012


def test_greedy_learners_break_ties_with_their_seeded_generator() -> None:
    def answers(seed: int) -> list[int]:
        learner = _learner("tamer", seed=seed)
        learner.tables.item_values[0] = torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=torch.float64)
        return [learner.act(item=0, feature=0) for _ in range(200)]

    first = answers(seed=3)
    assert first == answers(seed=3)  # the same seed, the same ties
    assert first != answers(seed=4)
    assert set(first) == {0, 2, 3}  # only the tied best, each of them


@pytest.mark.parametrize("learner", ["q_epsilon_greedy", "tamer"])
def test_a_rule_learner_beats_an_item_learner_on_unseen_items(learner: str) -> None:
    """A tiny deterministic case: a perfect teacher, no exceptions, no exploration. The
    learner with feature parameters answers the unseen items from their feature; with
    them switched off every unseen score is 0, so recall is exactly chance."""
    spec_fields: dict[str, Any] = {
        "learner": learner,
        "epsilon": 0.0,
        "answers": 4,
        "features": 4,
        "seen_items": 8,
        "unseen_items": 8,
        "irregular_fraction": 0.0,
        "trials": 80,
        "eval_every": 80,
        "delays": (0.0,),
        "headline_delay": 0.0,
        "teacher": {"accuracy": 1.0},
    }
    task = grammar_task(
        8, 8, answers=4, features=4, irregular_fraction=0.0, rng=torch.Generator().manual_seed(5)
    )
    rule = teach_and_test(_spec(**spec_fields, feature_learning_rate=0.5), task, replicate=0)
    items_only = teach_and_test(_spec(**spec_fields, feature_learning_rate=0.0), task, replicate=0)
    assert items_only.unseen[-1] == pytest.approx(0.25, abs=1e-12)
    assert items_only.seen[-1] > 0.9  # it did learn the items it was taught
    assert rule.unseen[-1] > 0.75  # three times chance, from the feature table alone


# --- whole runs ---------------------------------------------------------------------------

SMALL: dict[str, Any] = {
    "seen_items": 16,
    "unseen_items": 32,
    "trials": 160,
    "eval_every": 40,
    "replicates": 8,
}


def test_grammar_generalizes_to_unseen_items_and_vocabulary_stays_at_chance() -> None:
    headline = _headline(**SMALL, teacher={"accuracy": 1.0})
    assert headline["unseen_advantage_ci95_low"] > 0.1
    low, high = (
        headline["vocabulary_unseen_accuracy_ci95_low"],
        headline["vocabulary_unseen_accuracy_ci95_high"],
    )
    assert low < headline["chance"] < high
    assert headline["grammar_unseen_accuracy_mean"] <= headline["grammar_unseen_bound"]


def test_a_noisier_teacher_teaches_less() -> None:
    sure = _headline(**SMALL, teacher={"accuracy": 1.0})
    noisy = _headline(**SMALL, teacher={"accuracy": 0.3})
    for task in ("vocabulary", "grammar"):
        assert noisy[f"{task}_seen_accuracy_ci95_high"] < sure[f"{task}_seen_accuracy_ci95_low"]


def test_forgetting_spares_the_rule_when_it_decays_more_slowly() -> None:
    result = run_interactive_teaching(
        _spec(
            **SMALL,
            delays=(0.0, 10.0, 1000.0),
            headline_delay=10.0,
            item_decay_time=1.0,
            rule_decay_time=1e6,
            teacher={"accuracy": 1.0},
        ),
        InMemoryReporter(),
    )
    curves = {curve["name"]: curve for curve in result["curves"]}
    # At delay 0 the retention test is the last learning-curve point.
    assert (
        curves["vocabulary_seen_retention"]["mean"][0]
        == curves["vocabulary_seen_accuracy"]["mean"][-1]
    )
    # Item parameters gone: vocabulary keeps only what its feature table happens to fit
    # of the few seen items per feature; grammar keeps all the rule gives.
    vocabulary = curves["vocabulary_seen_retention"]["mean"]
    assert vocabulary[-1] < vocabulary[0] - 0.3
    grammar = curves["grammar_unseen_retention"]["mean"]
    assert grammar[-1] == pytest.approx(grammar[0], abs=0.01)
    assert grammar[-1] > 0.4


def test_the_run_stops_when_asked() -> None:
    with pytest.raises(RunCancelled):
        run_interactive_teaching(_spec(**SMALL), InMemoryReporter(stop_after_checks=2))


def test_a_long_task_stops_at_a_curve_point_not_at_its_end() -> None:
    spec = _spec(**SMALL)
    task = build_task(spec, "grammar", replicate_generator(spec.seed, 0, "task:grammar"))
    with pytest.raises(RunCancelled) as raised:
        teach_and_test(spec, task, 0, InMemoryReporter(stop_after_checks=1))
    assert raised.value.step == 2 * spec.eval_every  # the second curve point after trial 0


def test_runs_that_differ_only_in_the_learner_see_the_same_items_in_the_same_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Replicate r's task and teacher come from their own streams, so two learners meet
    the same task, and under strategy random (which ignores the answers) the same items."""
    asked: dict[str, list[int]] = {"q_softmax": [], "policy_shaping": []}
    current: list[str] = []
    original = SimulatedTeacher.next_item

    def recording(teacher: SimulatedTeacher) -> int:
        item = original(teacher)
        asked[current[0]].append(item)
        return item

    monkeypatch.setattr(SimulatedTeacher, "next_item", recording)
    tasks = {}
    for learner in asked:
        spec = _spec(**SMALL, learner=learner, teacher={"accuracy": 0.8, "strategy": "random"})
        task = build_task(spec, "grammar", replicate_generator(spec.seed, 1, "task:grammar"))
        current[:] = [learner]
        teach_and_test(spec, task, replicate=1)
        tasks[learner] = task
    first, second = tasks["q_softmax"], tasks["policy_shaping"]
    for part in ("features", "answers", "irregular"):
        assert torch.equal(getattr(first, part), getattr(second, part))
    assert len(asked["q_softmax"]) == SMALL["trials"]
    assert asked["q_softmax"] == asked["policy_shaping"]


def test_a_learner_that_never_learns_fails_the_kaspar_claim() -> None:
    """The claim: the share of items learned (2 right in a row) within 7 presentations
    exceeds the never-learning closed form by 0.5. A silent teacher leaves the learner
    guessing, near that closed form; a perfect teacher clears it."""
    assert run_within_window_by_chance(4) == pytest.approx(0.281494140625)
    assert run_within_window_by_chance(2) == pytest.approx(1 - 34 / 128)  # by enumeration
    fields = {**SMALL, "trials": 320}
    taught = _headline(**fields, teacher={"accuracy": 1.0})
    silent = _headline(**fields, teacher={"accuracy": 1.0, "silence": 0.99})
    margin = {
        name: h["vocabulary_learned_within_7_mean"] - h["learned_within_7_chance"]
        for name, h in (("taught", taught), ("silent", silent))
    }
    assert margin["taught"] > 0.5
    assert abs(margin["silent"]) < 0.15


def test_the_equal_decay_control_is_the_run_with_equal_decay_times() -> None:
    fields = {
        **SMALL,
        "delays": (0.0, 7.0),
        "headline_delay": 7.0,
        "item_decay_time": 7.0,
        "teacher": {"accuracy": 1.0},
    }
    slow_rule = _headline(**fields, rule_decay_time=28.0)
    equal = _headline(**fields, rule_decay_time=7.0)
    gap = "seen_forgetting_gap_mean"
    assert slow_rule[f"{gap[:-5]}_equal_decay_mean"] == pytest.approx(equal[gap], abs=1e-12)
    assert equal[f"{gap[:-5]}_equal_decay_mean"] == pytest.approx(equal[gap], abs=1e-12)
    assert slow_rule[gap] > equal[gap] + 0.05


# --- specs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "location"),
    [
        ({"headline_delay": 3.0}, ("headline_delay",)),
        ({"delays": (0.0, 7.0, 7.0)}, ("delays",)),
        ({"eval_every": 1000}, ("eval_every",)),
        ({"trials": 1000, "eval_every": 1}, ("eval_every",)),
        ({"consistency": 0.5}, ("consistency",)),
        ({"irregular_fraction": 0.5}, ("irregular_fraction",)),
        ({"teacher": {"strategy": "lecture"}}, ("teacher", "strategy")),
        ({"learner": "sarsa"}, ("learner",)),
        ({"teacher": {"accuracy": 0.2, "positive_bias": 0.9}}, ("teacher", "accuracy")),
    ],
)
def test_a_bad_spec_is_refused_at_the_field_to_change(
    fields: dict[str, Any], location: tuple[str, ...]
) -> None:
    with pytest.raises(ValidationError) as raised:
        _spec(**fields)
    assert [error["loc"] for error in raised.value.errors()] == [location]


def test_the_limits_name_the_tables_and_the_work() -> None:
    limits = {limit.path: limit for limit in _spec().compute_limits()}
    assert limits["spec.seen_items"].value == 32
    assert limits["spec.unseen_items"].value == 32
    assert limits["spec.seen_items"].setting == MATRIX_DIM_SETTING
    assert limits["spec.replicates"].setting == THEORY_CELLS_SETTING
    assert limits["spec.trials"].value == 20 * 2 * 320
    assert limits["spec.trials"].setting == "MEMLAB_MAX_STEPS"


def test_the_closed_form_example_in_the_kinds_docstrings_holds() -> None:
    assert doctest.testmod(core.experiments.interactive_teaching).failed == 0
