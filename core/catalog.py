"""Every experiment kind and probe kind, loaded: what the API, the worker, the CLI and
tests look kinds up in.

The registries (`core.registry`, `core.probes.registry`) only record what registers;
this module imports every module under `core/experiments/` and `core/probes/`, so a new
kind or probe is found by dropping in its file. It also rebuilds a finished run's probe
target, from the kind's `build` and final checkpoint, or from saved artifacts for a kind
that does not train.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model

from core.probes.registry import (
    ProbeKind,
    ProbeNotApplicableError,
    UnknownProbeError,
    registered_probes,
)
from core.probes.spec import ProbeSpec
from core.probes.target import ProbeTarget, TargetUnavailableError
from core.registry import ExperimentKind, UnknownKindError, registered_kinds
from core.specs import ExperimentSpec
from core.training.checkpoint import MODEL_FILE, latest_checkpoint

_ROOT = Path(__file__).parent
_PLUGIN_PACKAGES = ("probes", "experiments")


def _import_plugins() -> None:
    for package in _PLUGIN_PACKAGES:
        for module in pkgutil.iter_modules([str(_ROOT / package)]):
            importlib.import_module(f"core.{package}.{module.name}")


_import_plugins()


def all_kinds() -> dict[str, ExperimentKind[Any]]:
    """Every experiment kind by name."""
    return registered_kinds()


def get_kind(name: str) -> ExperimentKind[Any]:
    """The kind called `name`, or UnknownKindError listing the known ones."""
    kinds = registered_kinds()
    if name not in kinds:
        raise UnknownKindError(name, list(kinds))
    return kinds[name]


def parse_spec(raw: Mapping[str, Any]) -> ExperimentSpec:
    """Validate a stored spec dict against its kind's spec class (raises pydantic's error).

    A stored spec may predate rules added since (e.g. decay_steps ≤ steps): it keeps the
    meaning it had when it was accepted, so those rules are not applied (`core.specs.stored`).
    A new submission is validated by the API's request model, with every rule.
    """
    kind_name = raw.get("kind")
    if not isinstance(kind_name, str):
        raise UnknownKindError(repr(kind_name), list(registered_kinds()))
    return get_kind(kind_name).spec_class.model_validate(dict(raw), context={"stored": True})


def all_probes() -> dict[str, ProbeKind[Any]]:
    """Every probe kind by name."""
    return registered_probes()


def get_probe(name: str) -> ProbeKind[Any]:
    probes = registered_probes()
    if name not in probes:
        raise UnknownProbeError(name, list(probes))
    return probes[name]


def parse_probe_spec(raw: Mapping[str, Any]) -> ProbeSpec:
    """Validate a raw probe spec as the kind it names (raises pydantic's error, which
    lists the known kinds for an unknown one)."""
    return ProbeSpec.model_validate(dict(raw))


def check_applicable(probe: ProbeSpec, experiment: ExperimentSpec) -> None:
    """Raise ProbeNotApplicableError saying why `probe` cannot run on `experiment`."""
    reason = probe.inapplicability(experiment)
    if reason is not None:
        raise ProbeNotApplicableError(reason)


def check_reference(experiment: ExperimentSpec, reference: ExperimentSpec) -> None:
    """Raise ProbeNotApplicableError saying why `reference` cannot be `experiment`'s
    reference model: another kind, or data not disjoint from its members and non-members."""
    if reference.kind != experiment.kind:
        raise ProbeNotApplicableError(
            f"the reference experiment is a {reference.kind} run; it must be of the "
            f"probed experiment's kind ({experiment.kind}), trained on other data"
        )
    reason = experiment.reference_refusal(reference)
    if reason is not None:
        raise ProbeNotApplicableError(reason)


def build_target(experiment: ExperimentSpec, run_dir: Path, device: torch.device) -> ProbeTarget:
    """The probe target of a finished run, from its spec and the folder its run wrote
    (checkpoints for a kind that trains, saved artifacts for one that computes)."""
    kind = get_kind(experiment.kind)
    if kind.build is not None:
        checkpoint = latest_checkpoint(run_dir)
        if checkpoint is None:
            raise TargetUnavailableError("the experiment left no checkpoint to probe")
        built = kind.build(experiment)
        model = built.make_model().to(device)
        load_model(model, str(checkpoint.path / MODEL_FILE), device=str(device))
        model.eval()
        return built.probe_target(model)
    if kind.target_from_artifacts is not None:
        return kind.target_from_artifacts(experiment, run_dir, device)
    raise ProbeNotApplicableError(f"experiment kind {experiment.kind!r} cannot be probed")
