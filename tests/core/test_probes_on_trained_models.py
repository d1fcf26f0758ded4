"""The probes measure what they claim, on tiny models trained here.

- members a model saw many times separate from non-members (AUC well above 0.5);
- an untrained model does not separate them (AUC within noise of 0.5);
- Secret-Sharer exposure rises with the insertion count; never-inserted controls stay low;
- knowledge capacity never exceeds the data's entropy and rises with exposures and size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from core.catalog import (
    build_target,
    check_applicable,
    get_kind,
    get_probe,
    parse_probe_spec,
    parse_spec,
)
from core.models.sequence_model import SequenceModel, SequenceModelSpec
from core.probes.registry import ProbeInputs, ProbeNotApplicableError
from core.probes.target import ProbeTarget, SequenceSet
from core.reporter import InMemoryReporter
from core.specs import ExperimentSpec

MEMBERSHIP_ATTACKS = ["loss_mia", "zlib_mia", "min_k_mia", "min_k_pp_mia"]


def probe(kind: str, target: ProbeTarget, **params: Any) -> dict[str, Any]:
    spec = parse_probe_spec({"kind": kind, **params})
    return get_probe(kind).run(spec, ProbeInputs(target, {}), InMemoryReporter())


# ---------------------------------------------------------------- random sequences


def random_sequences(count: int, seed: int) -> torch.Tensor:
    return torch.randint(1, 16, (count, 12), generator=torch.Generator().manual_seed(seed))


def as_items(tokens: torch.Tensor, repeats: int) -> SequenceSet:
    rows = tokens.tolist()
    return SequenceSet.from_token_lists(
        rows, [0] * len(rows), [" ".join(map(str, r)) for r in rows], [repeats] * len(rows)
    )


def sequence_target(members: torch.Tensor, non_members: torch.Tensor, steps: int) -> ProbeTarget:
    """A small decoder trained for `steps` on `members` (every member in each batch)."""
    torch.manual_seed(0)
    model = SequenceModel(
        SequenceModelSpec(n_layer=2, width=48, mixer={"type": "attention", "n_head": 2}), 16, 12
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        logits = model(members[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 16), members[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return ProbeTarget(
        model=model,
        n_parameters=model.num_parameters(),
        vocab_size=16,
        vocabulary="ids<16>",
        members=as_items(members, repeats=steps),
        non_members=as_items(non_members, repeats=0),
    )


@pytest.fixture(scope="module")
def memorizing_target() -> ProbeTarget:
    """200 members, each seen 150 times, and 200 non-members from the same generator."""
    return sequence_target(random_sequences(200, seed=1), random_sequences(200, seed=2), 150)


@pytest.fixture(scope="module")
def untrained_target() -> ProbeTarget:
    return sequence_target(random_sequences(200, seed=1), random_sequences(200, seed=2), 0)


@pytest.mark.parametrize("attack", MEMBERSHIP_ATTACKS)
def test_members_seen_many_times_separate_clearly(
    attack: str, memorizing_target: ProbeTarget
) -> None:
    report = probe(attack, memorizing_target, bootstrap_rounds=200)
    assert report["attack"]["auc"] > 0.9
    assert report["attack"]["auc_ci95"][0] > 0.75
    # Both sets come from one generator, so a score blind to the model cannot tell them
    # apart: within noise of 0.5 (the AUC's standard error here is about 0.03).
    assert abs(report["blind_baseline"]["auc"] - 0.5) < 0.1


@pytest.mark.parametrize("attack", MEMBERSHIP_ATTACKS)
def test_an_untrained_model_does_not_separate_members(
    attack: str, untrained_target: ProbeTarget
) -> None:
    report = probe(attack, untrained_target, bootstrap_rounds=200)
    assert abs(report["attack"]["auc"] - 0.5) < 0.1  # ≈ 3 standard errors


def test_memorized_sequences_are_extractable_and_unseen_ones_are_not(
    memorizing_target: ProbeTarget,
) -> None:
    report = probe("extraction", memorizing_target, prefix_tokens=4, continuation_tokens=6)
    assert report["members"]["fraction_memorized"] > 0.8
    assert report["held_out"]["fraction_memorized"] == 0.0  # 15⁶ continuations: no luck


# ---------------------------------------------------------------- capacity_tradeoff runs


def trained(spec: ExperimentSpec, tmp_path: Path) -> ProbeTarget:
    reporter = InMemoryReporter(tmp_path)
    get_kind(spec.kind).run(spec, reporter)
    return build_target(spec, reporter.checkpoint_dir(), torch.device("cpu"))


def facts_spec(size: str = "n56", steps: int = 600, **extra: Any) -> ExperimentSpec:
    return parse_spec(
        {
            "kind": "capacity_tradeoff",
            "task": "facts",
            "size": size,
            "n_facts": 24,
            "train": {
                "steps": steps,
                "warmup_steps": min(50, steps),
                "decay_steps": steps,
                "batch_size": 64,
                "eval_every": steps,
                "checkpoint_every": steps,
            },
            **extra,
        }
    )


CANARIES = {"length": 3, "insertions": [1, 16], "per_insertion": 3, "controls": 3}


@pytest.fixture(scope="module")
def canary_run(tmp_path_factory: pytest.TempPathFactory) -> ProbeTarget:
    return trained(facts_spec(canaries=CANARIES), tmp_path_factory.mktemp("canaries"))


def test_exposure_rises_with_insertions_and_controls_stay_low(canary_run: ProbeTarget) -> None:
    report = probe("exposure", canary_run)
    by_r = {row["insertions"]: row for row in report["by_insertions"]}
    assert report["rank"].startswith("exact") and report["space_size"] == 1000
    assert by_r[0]["mean_exposure"] < by_r[1]["mean_exposure"] < by_r[16]["mean_exposure"]
    assert by_r[0]["max_exposure"] < 5.0  # log2(1000) ≈ 10 is the most possible
    assert by_r[16]["mean_exposure"] > 8.0


def test_trained_facts_are_recalled_and_held_out_ones_are_not(canary_run: ProbeTarget) -> None:
    report = probe("exact_recall", canary_run)
    assert report["scored"] == "the answer of each item"
    assert report["accuracy"] > 0.8
    assert report["held_out_accuracy"] == 0.0


def test_knowledge_capacity_is_bounded_by_the_data_and_grows_with_training(
    tmp_path: Path,
) -> None:
    results = {
        (size, steps): probe(
            "knowledge_capacity", trained(facts_spec(size, steps), tmp_path / f"{size}-{steps}")
        )
        for size, steps in [("n56", 1), ("n56", 150), ("n56", 600), ("n14", 600)]
    }
    for result in results.values():
        assert 0 <= result["bits"] <= result["data_bits"]
    assert results[("n56", 1)]["bits"] < 0.05 * results[("n56", 1)]["data_bits"]
    assert results[("n56", 150)]["bits"] < results[("n56", 600)]["bits"]  # more exposures
    assert results[("n14", 600)]["bits"] < results[("n56", 600)]["bits"]  # a bigger model
    assert results[("n56", 600)]["fraction_of_data_bits"] > 0.8
    # The mapping (which capital goes with which country) is part of the total; it is at
    # most log2(24!) ≈ 79 bits, and a model that recalls its facts has nearly all of it.
    for result in results.values():
        assert 0 <= result["mapping_bits"] <= min(result["bits"], result["mapping_data_bits"])
    assert results[("n56", 600)]["mapping_bits"] > 0.9 * results[("n56", 600)]["mapping_data_bits"]
    assert results[("n56", 1)]["mapping_bits"] < 0.1 * results[("n56", 1)]["mapping_data_bits"]


def test_a_probe_that_cannot_apply_says_why() -> None:
    no_canaries = facts_spec()
    with pytest.raises(ProbeNotApplicableError, match="canaries"):
        check_applicable(parse_probe_spec({"kind": "exposure"}), no_canaries)
    arithmetic = parse_spec({"kind": "capacity_tradeoff", "task": "arithmetic"})
    with pytest.raises(ProbeNotApplicableError, match="facts"):
        check_applicable(parse_probe_spec({"kind": "knowledge_capacity"}), arithmetic)


def test_kg_memorization_runs_can_be_probed(tmp_path: Path) -> None:
    spec = parse_spec(
        {
            "kind": "kg_memorization",
            "graph": {"n_concepts": 60},
            "train": {"steps": 300, "eval_every": 300, "checkpoint_every": 300},
        }
    )
    target = trained(spec, tmp_path)
    recall = probe("exact_recall", target)
    assert recall["accuracy"] > 0.5 and recall["held_out_accuracy"] < recall["accuracy"]
    attack = probe("loss_mia", target, bootstrap_rounds=100)["attack"]
    assert attack["auc"] > 0.6 and attack["n_members"] == attack["n_non_members"]
    with pytest.raises(ProbeNotApplicableError, match="generation"):
        check_applicable(parse_probe_spec({"kind": "extraction"}), spec)


def test_associative_recall_runs_can_be_probed(tmp_path: Path) -> None:
    # Few fixed training examples, trained on many times: memorized, not solved.
    spec = parse_spec(
        {
            "kind": "associative_recall",
            "train_examples": 64,
            "test_examples": 64,
            "train": {"steps": 300, "eval_every": 300, "checkpoint_every": 300, "device": "cpu"},
        }
    )
    target = trained(spec, tmp_path)
    recall = probe("exact_recall", target)
    assert recall["accuracy"] > recall["held_out_accuracy"]
    attack = probe("loss_mia", target, bootstrap_rounds=100)["attack"]
    assert attack["auc"] > 0.8


def test_fictional_qa_runs_can_be_probed(tmp_path: Path) -> None:
    spec = parse_spec(
        {
            "kind": "fictional_qa",
            "n_events": 24,
            "held_out_events": 8,
            "train": {"steps": 200, "warmup_steps": 20, "eval_every": 200, "checkpoint_every": 200},
        }
    )
    target = trained(spec, tmp_path)
    assert target.non_members is not None and len(target.non_members) == 8 * 5
    extraction = probe("extraction", target, prefix_tokens=8, continuation_tokens=8)
    assert extraction["members"]["n_tested"] == len(target.members)
    attack = probe("loss_mia", target, bootstrap_rounds=100)
    # 8 held-out events × the 4 styles the members have: the held-out style is left out.
    assert attack["attack"]["n_members"] == attack["attack"]["n_non_members"] == 8 * 4
    assert attack["attack"]["auc"] > 0.5
