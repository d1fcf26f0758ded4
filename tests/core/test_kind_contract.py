"""The contract every registered experiment kind keeps, checked with no per-kind code.

A new kind is covered here as soon as it registers. Every kind: its default spec and
template validate. A kind that trains: any `train.steps` works on its own, its smoke
spec trains, checkpoints and resumes to the same numbers; its `build` is deterministic;
its probe target, rebuilt from the checkpoint, has exactly the members `build` gives,
every one of them a training item, and non-members that are none; every probe its spec
accepts at submission also runs. A kind that computes without training: its smoke spec
gives the same numbers twice, reports progress, and stops when asked
(`check_computed_kind`, which tests/core/test_computed_kind_contract.py checks on an
example kind while memlab registers none).
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from core.batching import batch_key
from core.built import Built, MembershipSplit, item_digests
from core.catalog import all_kinds, all_probes, build_target, check_applicable, parse_probe_spec
from core.probes.features import Feature
from core.probes.membership import balanced_sets
from core.probes.registry import ProbeInputs, ProbeNotApplicableError
from core.probes.scoring import bootstrap_auc_interval
from core.probes.sequences import zlib_bits
from core.probes.spec import ProbeSpec
from core.probes.target import ItemSet, ProbeTarget, SequenceSet
from core.registry import ExperimentKind
from core.reporter import InMemoryReporter, RunCancelled
from core.shadows import inclusion_matrix, pool_items, shadow_specs
from core.specs import ExperimentSpec
from core.training.group import run_group

KINDS = sorted(all_kinds())
TRAINED_KINDS = [name for name in KINDS if all_kinds()[name].trains]
COMPUTED_KINDS = [name for name in KINDS if not all_kinds()[name].trains]
# What differs between two runs of one spec by design: clocks, and where a run resumed.
_RUN_BOOKKEEPING = {"wall_seconds", "resumed_from_step", "device"}


def _numbers(result: Any) -> Any:
    """The result without its bookkeeping, for comparing two runs of one spec."""
    if isinstance(result, dict):
        return {k: _numbers(v) for k, v in result.items() if k not in _RUN_BOOKKEEPING}
    if isinstance(result, list):
        return [_numbers(v) for v in result]
    return result


def _digest(items: ItemSet | None) -> str | None:
    """One hash over a whole item set, in order."""
    if items is None:
        return None
    return hashlib.sha256("".join(item_digests(items)).encode()).hexdigest()


@dataclass(frozen=True)
class SmokeRun:
    kind: ExperimentKind[Any]
    spec: ExperimentSpec
    result: dict[str, Any]
    checkpoints: Path

    def build(self) -> Built:
        assert self.kind.build is not None
        return self.kind.build(self.spec)

    def target(self) -> ProbeTarget:
        return build_target(self.spec, self.checkpoints, torch.device("cpu"))


@pytest.fixture(scope="module", params=TRAINED_KINDS)
def smoke_run(request: pytest.FixtureRequest) -> SmokeRun:
    kind = all_kinds()[request.param]
    spec = kind.spec_class.smoke_spec()
    reporter = InMemoryReporter()
    result = kind.run(spec, reporter)
    return SmokeRun(kind, spec, result, reporter.checkpoint_dir())


@pytest.mark.parametrize("name", KINDS)
def test_the_default_spec_and_its_template_validate_to_the_same_spec(name: str) -> None:
    kind = all_kinds()[name]
    template = kind.spec_class.template()
    assert kind.spec_class.model_validate(template) == kind.default_spec()
    # Fields derived from others are left for the server to fill, not baked in.
    for path in kind.spec_class.derived_fields:
        node: Any = template
        for part in path.split("."):
            node = node[part]
        assert node is None, path


@pytest.mark.parametrize("name", TRAINED_KINDS)
@pytest.mark.parametrize("steps", [1, 50, 100_000])
def test_any_number_of_steps_works_with_the_default_schedule(name: str, steps: int) -> None:
    spec = all_kinds()[name].spec_class.model_validate({"kind": name, "train": {"steps": steps}})
    assert spec.train.steps == steps
    assert 0 <= spec.train.warmup <= spec.train.decay_end <= steps


@pytest.mark.parametrize("name", TRAINED_KINDS)
def test_the_resource_estimate_counts_the_model_steps_and_items(name: str) -> None:
    spec = all_kinds()[name].spec_class.smoke_spec()
    estimate = spec.resource_estimate()
    assert estimate.parameters > 0
    # Every stage's steps: the server's step cap checks the estimate.
    assert estimate.steps == spec.training_steps() >= spec.train.steps
    assert estimate.dataset_items > 0


def test_a_resumed_smoke_run_gives_the_numbers_of_an_uninterrupted_one(
    smoke_run: SmokeRun, tmp_path: Path
) -> None:
    stopped = InMemoryReporter(directory=tmp_path, stop_after_checks=3)
    with pytest.raises(RunCancelled):
        smoke_run.kind.run(smoke_run.spec, stopped)
    resumed = InMemoryReporter(directory=tmp_path)
    result = smoke_run.kind.run(smoke_run.spec, resumed)
    assert result["training"]["resumed_from_step"] == 3
    assert _numbers(result) == _numbers(smoke_run.result)


def test_the_probe_target_rebuilds_the_same_members_from_the_checkpoint(
    smoke_run: SmokeRun,
) -> None:
    built = smoke_run.build()
    target = smoke_run.target()
    assert len(target.members) > 0
    assert _digest(target.members) == _digest(built.membership.members)
    assert _digest(target.non_members) == _digest(built.membership.non_members)
    # A second build of the same spec is the same data, item for item.
    again = smoke_run.build()
    assert _digest(again.training_items) == _digest(built.training_items)
    assert _digest(again.membership.non_members) == _digest(built.membership.non_members)


def test_members_are_training_items_and_non_members_are_not(smoke_run: SmokeRun) -> None:
    built = smoke_run.build()
    trained_on = set(item_digests(built.training_items))
    members = item_digests(built.membership.members)
    assert set(members) <= trained_on, "a member the training batches never drew from"
    assert built.membership.rule
    if built.membership.non_members is not None:
        non_members = item_digests(built.membership.non_members)
        assert not set(non_members) & trained_on, "a non-member that was trained on"
        assert len(non_members) > 0


def test_the_estimate_bounds_what_the_run_builds(smoke_run: SmokeRun) -> None:
    """The server's caps check the estimate, so it must not undercount: its parameters
    bound the model `build` makes (the one the run reports), its items the training items."""
    built = smoke_run.build()
    parameters = sum(p.numel() for p in built.make_model().parameters())
    assert parameters == smoke_run.result["n_parameters"]
    estimate = smoke_run.spec.resource_estimate()
    assert estimate.parameters >= parameters
    assert estimate.dataset_items >= len(built.training_items)


@pytest.mark.parametrize("name", TRAINED_KINDS)
def test_a_blind_baseline_sits_at_chance_on_the_membership_split(name: str) -> None:
    """Members and non-members come from one distribution: a score that never looks at
    the model (−zlib length) cannot tell them apart, on at least 200 of each."""
    kind = all_kinds()[name]
    assert kind.build is not None
    spec = kind.spec_class.membership_spec()
    check_blind_baseline_at_chance(kind.build(spec).membership, spec.seed)


def test_the_blind_baseline_check_fails_on_a_split_that_mixes_tasks_unevenly() -> None:
    """The check itself: capacity_tradeoff's joint split as it was before strata (members
    every training line, a third of them sums; non-members nearly all facts) fails it."""
    kind = all_kinds()["capacity_tradeoff"]
    assert kind.build is not None
    spec = kind.spec_class.membership_spec()
    built = kind.build(spec)
    lines = [text for text in built.training_items.texts if text.startswith(("<", "Capital"))]
    unseen = [text for text in built.membership.non_members.texts]  # type: ignore[union-attr]
    held_out_facts = [text for text in unseen if text.startswith("Capital")]
    encode = _char_encoder(built.vocabulary)
    shifted = MembershipSplit(
        members=SequenceSet.from_texts(lines, encode),
        non_members=SequenceSet.from_texts([*held_out_facts, "<5+7=12>\n"], encode),
        rule="every training line against the held-out lines, unmatched",
    )
    with pytest.raises(AssertionError, match="blind baseline"):
        check_blind_baseline_at_chance(shifted, spec.seed)


def _char_encoder(characters: str) -> Any:
    return lambda text: [characters.index(c) for c in text]


def check_blind_baseline_at_chance(split: MembershipSplit, seed: int) -> None:
    """The blind baseline's AUC interval contains 0.5 on the split as the membership
    probes draw it (balanced, at most 2,000 of each), with at least 200 of each."""
    assert split.non_members is not None, "the membership spec has no non-members"
    members, non_members = balanced_sets(split.items_target(), max_items=2000, seed=seed)
    assert len(members) >= 200, f"only {len(members)} members and non-members to compare"
    low, high = bootstrap_auc_interval(
        -zlib_bits(members.texts), -zlib_bits(non_members.texts), seed=seed
    )
    assert low <= 0.5 <= high, (
        f"the blind baseline separates the split: AUC 95% interval [{low:.3f}, {high:.3f}] "
        f"on {len(members)} of each ({split.rule})"
    )


@pytest.mark.parametrize("name", COMPUTED_KINDS)
def test_a_computed_kind_is_deterministic_reports_progress_and_stops(
    name: str, tmp_path: Path
) -> None:
    check_computed_kind(all_kinds()[name], tmp_path)


def check_computed_kind(kind: ExperimentKind[Any], directory: Path) -> None:
    """A kind that computes without training: the same smoke spec gives the same numbers,
    progress is reported and ends at 1, and a stop request ends the run with RunCancelled."""
    spec = kind.spec_class.smoke_spec()
    first_reporter = InMemoryReporter(directory=directory / "first")
    first = kind.run(spec, first_reporter)
    second = kind.run(spec, InMemoryReporter(directory=directory / "second"))
    assert _numbers(first) == _numbers(second)
    fractions = [fraction for fraction, _ in first_reporter.progress_log]
    assert fractions and fractions == sorted(fractions) and fractions[-1] == 1.0
    with pytest.raises(RunCancelled):
        kind.run(spec, InMemoryReporter(directory=directory / "stopped", stop_after_checks=1))
    assert spec.resource_estimate().limits, "a computed kind names the limits it asks for"


def _probe_requests(experiment_id: uuid.UUID) -> list[dict[str, Any]]:
    """Every probe kind at its defaults; a reference attack names the run itself, and a
    probe of shadow models asks for the fewest that every variant of it accepts."""
    requests = []
    for name, probe in all_probes().items():
        if "reference_experiment_id" in probe.spec_class.model_fields:
            requests.append({"kind": name, "reference_experiment_id": str(experiment_id)})
        elif "shadows" in probe.spec_class.model_fields:
            requests.append({"kind": name, "shadows": SMOKE_SHADOWS})
        else:
            requests.append({"kind": name})
    return requests


SMOKE_SHADOWS = 4


def _shadow_targets(smoke_run: SmokeRun, probe: ProbeSpec, directory: Path) -> list[ProbeTarget]:
    """The shadow models `probe` asks for, trained as one batched group at the smoke spec."""
    request = probe.shadow_models()
    if request is None:
        return []
    specs = shadow_specs(smoke_run.spec, request.count, request.seed)
    reporters = [InMemoryReporter(directory=directory / f"shadow{i}") for i in range(len(specs))]
    outcomes = run_group(
        [(spec, reporter) for spec, reporter in zip(specs, reporters, strict=True)]
    )
    assert all(outcome.error is None for outcome in outcomes), outcomes
    return [
        build_target(spec, reporter.checkpoint_dir(), torch.device("cpu"))
        for spec, reporter in zip(specs, reporters, strict=True)
    ]


def test_every_probe_accepted_at_submission_runs(smoke_run: SmokeRun, tmp_path: Path) -> None:
    run_id = uuid.uuid4()
    target = smoke_run.target()
    accepted = []
    for raw in _probe_requests(run_id):
        probe = parse_probe_spec(raw)
        try:
            check_applicable(probe, smoke_run.spec)
        except ProbeNotApplicableError:
            continue
        # The same decision as the experiment spec's own `probes` field makes, but for a
        # probe of shadow models, which needs the finished run and is refused there.
        listed = {**smoke_run.spec.model_dump(mode="json"), "probes": [raw]}
        if probe.shadow_models() is None:
            type(smoke_run.spec).model_validate(listed)
        else:
            with pytest.raises(ValueError, match="POST /v1/probes"):
                type(smoke_run.spec).model_validate(listed)
        shadows = _shadow_targets(smoke_run, probe, tmp_path)
        result = all_probes()[probe.kind].run(
            probe,
            ProbeInputs(target, {run_id: target}, shadows),
            InMemoryReporter(directory=tmp_path),
        )
        assert isinstance(result, dict) and result, probe.kind
        accepted.append(probe.kind)
    assert accepted, f"{smoke_run.spec.kind} accepts no probe at its smoke spec"
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_a_shadow_trains_on_its_half_of_the_pool_and_shadows_batch_together(
    smoke_run: SmokeRun,
) -> None:
    """A kind offering shadow training: shadow i's training items are exactly the pool
    items row i of the inclusion matrix keeps, its non-members the rest, and the shadows
    of one pool share a batch key (so a sweep trains them as one ensemble)."""
    if Feature.shadow_training not in (smoke_run.spec.probe_features() or frozenset()):
        pytest.skip(f"{smoke_run.spec.kind} offers no shadow training")
    pool = pool_items(smoke_run.build().membership)
    specs = shadow_specs(smoke_run.spec, 4, seed=3)
    keep = inclusion_matrix(3, 4, len(pool))
    pool_digests = item_digests(pool)
    for index, spec in enumerate(specs):
        shadow = smoke_run.kind.build(spec)  # type: ignore[misc]
        inside = [d for d, kept in zip(pool_digests, keep[index].tolist(), strict=True) if kept]
        outside = [
            d for d, kept in zip(pool_digests, keep[index].tolist(), strict=True) if not kept
        ]
        assert item_digests(shadow.training_items) == inside
        assert item_digests(shadow.membership.members) == inside
        assert shadow.membership.non_members is not None
        assert item_digests(shadow.membership.non_members) == outside
        assert Feature.shadow_training not in (spec.probe_features() or frozenset())
    assert len({batch_key(spec) for spec in specs}) == 1
    assert batch_key(specs[0]) != batch_key(shadow_specs(smoke_run.spec, 4, seed=4)[0])
