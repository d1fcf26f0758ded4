"""capacity_tradeoff builds the paper's data and scores answers the paper's way."""

from collections import Counter

import pytest
import torch

from core.catalog import parse_spec
from core.experiments.capacity_tradeoff import CapacityTask, run
from core.experiments.capacity_tradeoff import build as build_kind
from core.probes.membership import balanced_sets
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


def test_joint_task_trains_on_both_sets() -> None:
    task = build(task="joint")
    assert len(task.training_lines) == 196 + 50


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


@pytest.mark.parametrize(
    "fields",
    [
        {"task": "arithmetic"},
        {"task": "arithmetic", "held_out": ["1+1", "1+1", "9-9"]},
        {"task": "facts", "n_facts": 3000, "facts_seed": 7},
        {"task": "joint", "canaries": {"template": "the code is {secret}!", "alphabet": "XYZ"}},
    ],
    ids=["arithmetic", "repeated-held-out", "3000-facts", "joint-canaries"],
)
def test_the_estimate_bounds_the_vocabulary_and_counts_the_lines_without_the_data(
    fields: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = parse_spec({"kind": "capacity_tradeoff", **fields})
    task = CapacityTask.build(spec)

    def refuse(*_: object) -> None:
        raise AssertionError("the estimate drew the facts")

    monkeypatch.setattr("core.experiments.capacity_tradeoff.fictional_facts", refuse)
    assert spec.dataset_items() == len(task.training_lines)
    assert task.vocab.size <= spec.vocabulary_bound() <= task.vocab.size + 20
    assert spec.resource_estimate().parameters >= spec.parameter_count() > 0


def test_a_joint_split_is_compared_with_as_many_sums_and_facts_on_each_side() -> None:
    """Before strata the joint split was a third sums against nearly all facts, which a
    blind baseline separated; now an attack compares 4 sums and 60 facts on each side."""
    spec = parse_spec({"kind": "capacity_tradeoff", "task": "joint", "n_facts": 60})
    built = build_kind(spec)
    split = built.membership
    assert split.non_members is not None
    assert len(split.members) == 196 + 60 and len(split.non_members) == 4 + 60
    target = built.probe_target(built.make_model())
    members, non_members = balanced_sets(target, max_items=2000, seed=spec.seed)

    def tasks(texts: tuple[str, ...]) -> Counter[str]:
        return Counter("sum" if text.startswith("<") else "fact" for text in texts)

    assert tasks(members.texts) == tasks(non_members.texts) == {"sum": 4, "fact": 60}
    assert tasks(split.members.texts) == Counter(split.member_strata)
