"""reference_mia with a reference trained on disjoint data, end to end on every kind that
offers one: the reference reads the target's items with the same token ids, it never
trained on the target's members or non-members, and a reference that did is refused.

Every kind that can offer a disjoint reference is covered with no per-kind code: a kind
with `reference_data` offers it when a run reserves a slice; others (associative_recall)
offer it on any run, their reference being `spec.reference_spec()`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from core.built import item_digests
from core.catalog import (
    all_kinds,
    build_target,
    check_applicable,
    check_reference,
    get_probe,
    parse_probe_spec,
)
from core.probes.features import Feature
from core.probes.registry import ProbeInputs, ProbeNotApplicableError
from core.probes.target import ProbeTarget
from core.reporter import InMemoryReporter
from core.specs import ExperimentSpec


def target_spec(name: str) -> ExperimentSpec:
    """The kind's smoke spec, reserving a slice for a reference where the kind can."""
    spec_class = all_kinds()[name].spec_class
    smoke = spec_class.smoke_spec()
    if "reference_data" not in spec_class.model_fields:
        return smoke
    return spec_class.model_validate({**smoke.model_dump(mode="json"), "reference_data": "reserve"})


OFFERING = [
    name
    for name in sorted(all_kinds())
    if all_kinds()[name].trains
    and Feature.disjoint_reference in (target_spec(name).probe_features() or frozenset())
]


def test_the_kinds_that_build_their_vocabulary_from_their_data_offer_a_reference() -> None:
    assert {"capacity_tradeoff", "fictional_qa", "kg_memorization", "associative_recall"} <= set(
        OFFERING
    )


def train(spec: ExperimentSpec, directory: Path) -> ProbeTarget:
    reporter = InMemoryReporter(directory=directory)
    all_kinds()[spec.kind].run(spec, reporter)
    return build_target(spec, reporter.checkpoint_dir(), torch.device("cpu"))


@pytest.mark.parametrize("name", OFFERING)
def test_reference_mia_runs_with_a_reference_trained_on_disjoint_data(
    name: str, tmp_path: Path
) -> None:
    target_run = target_spec(name)
    reference_run = target_run.reference_spec()
    assert reference_run is not None
    check_reference(target_run, reference_run)
    build = all_kinds()[name].build
    assert build is not None
    target_split = build(target_run).membership
    reference_items = set(item_digests(build(reference_run).training_items))
    assert not reference_items & set(item_digests(target_split.members))
    assert target_split.non_members is not None
    assert not reference_items & set(item_digests(target_split.non_members))

    target = train(target_run, tmp_path / "target")
    reference = train(reference_run, tmp_path / "reference")
    assert reference.vocabulary == target.vocabulary
    probe = parse_probe_spec({"kind": "reference_mia", "reference_experiment_id": _ID})
    check_applicable(probe, target_run)
    result = get_probe("reference_mia").run(
        probe, ProbeInputs(target, {probe.reference_experiment_id: reference}), _reporter()
    )
    attack = result["attack"]
    assert attack["n_members"] == attack["n_non_members"] > 0
    assert 0.0 <= attack["auc_ci95"][0] <= attack["auc"] <= attack["auc_ci95"][1] <= 1.0


@pytest.mark.parametrize("name", OFFERING)
def test_a_reference_that_trained_on_the_target_s_data_is_refused(name: str) -> None:
    target_run = target_spec(name)
    with pytest.raises(ProbeNotApplicableError):
        check_reference(target_run, target_run)  # a rerun of the target: the same data


def test_a_reference_whose_data_differs_is_refused_naming_the_field() -> None:
    target_run = target_spec("fictional_qa")
    reference_run = target_run.reference_spec()
    assert reference_run is not None
    other = type(reference_run).model_validate(
        {**reference_run.model_dump(mode="json"), "n_events": target_run.n_events + 4}
    )
    with pytest.raises(ProbeNotApplicableError, match="n_events"):
        check_reference(target_run, other)


def test_a_run_that_reserves_nothing_offers_no_reference_and_says_how() -> None:
    spec_class = all_kinds()["kg_memorization"].spec_class
    probe = parse_probe_spec({"kind": "reference_mia", "reference_experiment_id": _ID})
    with pytest.raises(ProbeNotApplicableError, match='reference_data: "reserve"'):
        check_applicable(probe, spec_class.smoke_spec())


_ID = "00000000-0000-4000-8000-000000000001"


def _reporter() -> Any:
    return InMemoryReporter()
