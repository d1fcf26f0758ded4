"""The contract every registered experiment kind keeps, checked with no per-kind code.

A new kind is covered here as soon as it registers: its default spec and template
validate, any `train.steps` works on its own, its smoke spec trains, checkpoints and
resumes to the same numbers, its probe target rebuilds the same members from the
checkpoint with non-members disjoint from them, and every probe its spec accepts at
submission also runs.
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

from core.probes.registry import (
    ProbeInputs,
    ProbeNotApplicableError,
    all_probes,
    build_target,
    check_applicable,
    parse_probe_spec,
)
from core.probes.target import ProbeTarget, SequenceSet
from core.registry import ExperimentKind, all_kinds
from core.reporter import InMemoryReporter, RunCancelled
from core.specs import ExperimentSpec
from core.training.checkpoint import MODEL_FILE, latest_checkpoint

KINDS = sorted(all_kinds())
# What differs between two runs of one spec by design: clocks, and where a run resumed.
_RUN_BOOKKEEPING = {"wall_seconds", "resumed_from_step", "device"}


def _numbers(result: Any) -> Any:
    """The result without its bookkeeping, for comparing two runs of one spec."""
    if isinstance(result, dict):
        return {k: _numbers(v) for k, v in result.items() if k not in _RUN_BOOKKEEPING}
    if isinstance(result, list):
        return [_numbers(v) for v in result]
    return result


def _digest(items: SequenceSet | None) -> str | None:
    if items is None:
        return None
    data = items.inputs.numpy().tobytes() + items.targets.numpy().tobytes()
    return hashlib.sha256(data + "\n".join(items.texts).encode()).hexdigest()


@dataclass(frozen=True)
class SmokeRun:
    kind: ExperimentKind[Any]
    spec: ExperimentSpec
    result: dict[str, Any]
    checkpoints: Path

    def target(self) -> ProbeTarget:
        checkpoint = latest_checkpoint(self.checkpoints)
        assert checkpoint is not None
        return build_target(self.spec, checkpoint.path / MODEL_FILE, torch.device("cpu"))


@pytest.fixture(scope="module", params=KINDS)
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


@pytest.mark.parametrize("name", KINDS)
@pytest.mark.parametrize("steps", [1, 50, 100_000])
def test_any_number_of_steps_works_with_the_default_schedule(name: str, steps: int) -> None:
    spec = all_kinds()[name].spec_class.model_validate({"kind": name, "train": {"steps": steps}})
    assert spec.train.steps == steps
    assert 0 <= spec.train.warmup <= spec.train.decay_end <= steps


@pytest.mark.parametrize("name", KINDS)
def test_the_resource_estimate_counts_the_model_steps_and_items(name: str) -> None:
    spec = all_kinds()[name].spec_class.smoke_spec()
    estimate = spec.resource_estimate()
    assert estimate.parameters > 0
    assert estimate.steps == spec.train.steps
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
    first, second = smoke_run.target(), smoke_run.target()
    assert len(first.members) > 0
    assert _digest(first.members) == _digest(second.members)
    assert _digest(first.non_members) == _digest(second.non_members)
    if first.non_members is not None:
        # Non-members were never trained on: no item is on both sides of the split.
        assert not set(first.members.texts) & set(first.non_members.texts)


def _probe_requests(experiment_id: uuid.UUID) -> list[dict[str, Any]]:
    """Every probe kind at its defaults; a reference attack names the run itself."""
    requests = []
    for name, probe in all_probes().items():
        if "reference_experiment_id" in probe.spec_class.model_fields:
            requests.append({"kind": name, "reference_experiment_id": str(experiment_id)})
        else:
            requests.append({"kind": name})
    return requests


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
        # The same decision as the experiment spec's own `probes` field makes.
        type(smoke_run.spec).model_validate(
            {**smoke_run.spec.model_dump(mode="json"), "probes": [raw]}
        )
        result = all_probes()[probe.kind].run(
            probe, ProbeInputs(target, {run_id: target}), InMemoryReporter(directory=tmp_path)
        )
        assert isinstance(result, dict) and result, probe.kind
        accepted.append(probe.kind)
    assert accepted, f"{smoke_run.spec.kind} accepts no probe at its smoke spec"
    shutil.rmtree(tmp_path, ignore_errors=True)
