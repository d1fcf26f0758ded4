"""capacity_tradeoff builds the paper's data and scores answers the paper's way."""

import torch

from core.catalog import parse_spec
from core.experiments.capacity_tradeoff import (
    CapacityTask,
    arithmetic_problems,
    fictional_facts,
    run,
    score_arithmetic,
    score_facts,
)
from core.reporter import InMemoryReporter
from tests.conftest import tiny_capacity_spec


def build(**fields: object) -> CapacityTask:
    return CapacityTask.build(parse_spec({"kind": "capacity_tradeoff", **fields}))


def test_arithmetic_training_set_is_196_nine_character_lines_without_the_held_out_sums() -> None:
    lines = build(task="arithmetic").training_lines
    assert len(lines) == 196
    assert {len(line) for line in lines} == {9}
    assert "<5+5=10>\n" in lines and "<1-4=-3>\n" in lines and "<1+2=3> \n" in lines
    for held_out in ("<5+7=", "<7+5=", "<5-7=", "<7-5="):
        assert not any(line.startswith(held_out) for line in lines)


def test_facts_are_distinct_fictional_names_in_the_papers_line_format() -> None:
    facts = fictional_facts(50, seed=0)
    assert len({f.country for f in facts}) == 50
    assert len({f.capital for f in facts} | {f.country for f in facts}) == 100
    assert facts[0].line == f"Capital of {facts[0].country} is {facts[0].capital} \n"
    assert fictional_facts(50, seed=0) == facts
    assert fictional_facts(50, seed=1) != facts


def test_joint_task_trains_on_both_sets() -> None:
    task = build(task="joint")
    assert len(task.training_lines) == 196 + 50


def test_arithmetic_scoring_matches_the_papers_pattern_for_a_model_that_misses_only_held_out() -> (
    None
):
    problems = arithmetic_problems()
    held_out = ("5+7", "7+5", "5-7", "7-5")
    completions = [("99>" if p.key in held_out else f"{p.answer}> ") for p in problems]
    metrics = score_arithmetic(problems, completions, held_out)
    assert metrics["eval/arithmetic_all"] == 0.98
    assert metrics["eval/arithmetic_seen"] == 1.0
    assert metrics["eval/arithmetic_held_out"] == 0.0
    assert metrics["eval/arithmetic_add"] == metrics["eval/arithmetic_sub"] == 0.98


def test_arithmetic_answers_must_be_the_exact_signed_integer() -> None:
    by_key = {p.key: p for p in arithmetic_problems()}
    problems = [by_key["1-4"], by_key["9+9"], by_key["2+2"]]
    metrics = score_arithmetic(problems, ["-3>", "18>", "4 "], ())
    assert metrics["eval/arithmetic_all"] == 1.0
    wrong = score_arithmetic(problems, ["3>", "1>", ""], ())
    assert wrong["eval/arithmetic_all"] == 0.0


def test_fact_scoring_ignores_case_spaces_and_a_final_full_stop_only() -> None:
    facts = fictional_facts(3, seed=0)
    right = [f" {facts[0].capital.upper()}. ", facts[1].capital, facts[2].capital + "x"]
    assert score_facts(facts, right)["eval/facts"] == 2 / 3


def test_a_short_run_reports_per_task_accuracy_and_the_held_out_answers() -> None:
    spec = parse_spec(tiny_capacity_spec(task="joint"))
    reporter = InMemoryReporter()
    result = run(spec, reporter)
    assert set(result["final"]) >= {"arithmetic_held_out", "arithmetic_seen", "facts", "score"}
    assert set(result["held_out_answers"]) == {"5+7", "7+5", "5-7", "7-5"}
    assert result["best"]["step"] in (20, 40, 60)
    assert result["training"]["steps"] == 60
    assert [s for s, _ in reporter.series("eval/facts")] == [20, 40, 60]


def test_same_spec_and_seed_give_the_same_result() -> None:
    spec = parse_spec(tiny_capacity_spec(task="arithmetic"))
    first, second = run(spec, InMemoryReporter()), run(spec, InMemoryReporter())
    first["training"].pop("wall_seconds"), second["training"].pop("wall_seconds")
    assert first == second


def test_untrained_model_scores_near_zero() -> None:
    task = build(task="joint")
    from core.models.transformer import Decoder, DecoderSpec

    torch.manual_seed(0)
    model = Decoder(DecoderSpec(n_embd=14), task.vocab.size, 24)
    metrics, _ = task.evaluate(model)
    assert metrics["eval/facts"] == 0.0
    assert metrics["eval/arithmetic_all"] < 0.05
