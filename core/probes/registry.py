"""The registry of probe kinds, and of the experiment kinds that probes can read.

A probe kind registers its spec class and run function with `@register_probe` in its
own module under `core/probes/`. An experiment kind makes itself probeable by
registering, in its own module, a builder that turns its spec and final weights into a
`ProbeTarget` (`@register_probe_target`), together with the features that spec offers,
so that a probe that cannot apply (e.g. `exposure` on a run without canaries) is refused
when it is submitted, with the reason, rather than failing on a worker.
"""

from __future__ import annotations

import importlib
import pkgutil
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import torch

from core.probes.target import Feature, ProbeTarget
from core.reporter import Reporter
from core.specs import ExperimentSpec, SpecModel


class ProbeSpec(SpecModel):
    """Base of every probe kind's spec; subclasses narrow `kind` to a literal and declare
    the target features they need."""

    kind: str
    seed: int = 0

    needs: ClassVar[frozenset[Feature]] = frozenset()

    def refusal(self, experiment: ExperimentSpec) -> str | None:
        """Why this probe cannot run on `experiment` beyond a missing feature (e.g. prompts
        longer than the model's context); None if nothing else stands in the way."""
        return None

    def referenced_experiments(self) -> tuple[uuid.UUID, ...]:
        """Other experiments this probe reads besides its target (e.g. a reference model)."""
        return ()


@dataclass(frozen=True)
class ProbeInputs:
    """What a probe run gets: its target and any other experiment it named, by id."""

    target: ProbeTarget
    references: Mapping[uuid.UUID, ProbeTarget]


ProbeSpecT = TypeVar("ProbeSpecT", bound=ProbeSpec)
ProbeRunFn = Callable[[ProbeSpecT, ProbeInputs, Reporter], dict[str, Any]]


class UnknownProbeError(LookupError):
    """No probe kind of that name is registered."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown probe kind {name!r}; known probe kinds: {', '.join(known)}")
        self.name = name


class ProbeNotApplicableError(ValueError):
    """The probe needs something the experiment does not offer (HTTP 422 at submission)."""


@dataclass(frozen=True)
class ProbeKind(Generic[ProbeSpecT]):
    name: str
    description: str
    spec_class: type[ProbeSpecT]
    run: ProbeRunFn[ProbeSpecT]

    def default_spec(self) -> ProbeSpecT:
        return self.spec_class.model_validate({"kind": self.name})


ExperimentSpecT = TypeVar("ExperimentSpecT", bound=ExperimentSpec)
BuildTargetFn = Callable[[ExperimentSpecT, Path, torch.device], ProbeTarget]
FeaturesFn = Callable[[ExperimentSpecT], frozenset[Feature]]


@dataclass(frozen=True)
class TargetBuilder(Generic[ExperimentSpecT]):
    """How to rebuild a probe target for one experiment kind.

    build(spec, weights, device): `weights` is the final checkpoint's model.safetensors.
    features(spec): what a run of that spec offers probes.
    """

    kind: str
    features: FeaturesFn[ExperimentSpecT]
    build: BuildTargetFn[ExperimentSpecT]


_PROBES: dict[str, ProbeKind[Any]] = {}
_TARGETS: dict[str, TargetBuilder[Any]] = {}


def _kind_literal(spec_class: type[SpecModel]) -> str:
    name = spec_class.model_fields["kind"].default
    if not isinstance(name, str):
        raise TypeError(f"{spec_class.__name__}.kind needs a literal default naming the kind")
    return name


def register_probe(
    spec_class: type[ProbeSpecT], description: str
) -> Callable[[ProbeRunFn[ProbeSpecT]], ProbeRunFn[ProbeSpecT]]:
    """Decorator registering `run` as the probe kind named by `spec_class.kind`."""
    name = _kind_literal(spec_class)

    def decorate(run: ProbeRunFn[ProbeSpecT]) -> ProbeRunFn[ProbeSpecT]:
        if name in _PROBES:
            raise ValueError(f"probe kind {name!r} is registered twice")
        _PROBES[name] = ProbeKind(name, description, spec_class, run)
        return run

    return decorate


def register_probe_target(
    spec_class: type[ExperimentSpecT], features: FeaturesFn[ExperimentSpecT]
) -> Callable[[BuildTargetFn[ExperimentSpecT]], BuildTargetFn[ExperimentSpecT]]:
    """Decorator registering how probes rebuild a target for the experiment kind."""
    name = _kind_literal(spec_class)

    def decorate(build: BuildTargetFn[ExperimentSpecT]) -> BuildTargetFn[ExperimentSpecT]:
        _TARGETS[name] = TargetBuilder(name, features, build)
        return build

    return decorate


def all_probes() -> dict[str, ProbeKind[Any]]:
    """Every registered probe kind by name, after importing the built-in ones."""
    import core.probes

    for module in pkgutil.iter_modules(core.probes.__path__):
        importlib.import_module(f"core.probes.{module.name}")
    return dict(sorted(_PROBES.items()))


def get_probe(name: str) -> ProbeKind[Any]:
    probes = all_probes()
    if name not in probes:
        raise UnknownProbeError(name, list(probes))
    return probes[name]


def parse_probe_spec(raw: Mapping[str, Any]) -> ProbeSpec:
    """Validate a raw probe spec against its kind's spec class (raises pydantic's error)."""
    name = raw.get("kind")
    if not isinstance(name, str):
        raise UnknownProbeError(repr(name), list(all_probes()))
    return get_probe(name).spec_class.model_validate(dict(raw))


def target_builder(experiment_kind: str) -> TargetBuilder[Any] | None:
    """The probe-target builder of an experiment kind, None if the kind is not probeable."""
    import core.experiments  # noqa: F401  (kinds register their builders on import)

    return _TARGETS.get(experiment_kind)


def offered_features(experiment: ExperimentSpec) -> frozenset[Feature] | None:
    """What a run of `experiment` offers probes; None if its kind cannot be probed."""
    builder = target_builder(experiment.kind)
    return builder.features(experiment) if builder else None


def check_applicable(probe: ProbeSpec, experiment: ExperimentSpec) -> None:
    """Raise ProbeNotApplicableError saying why `probe` cannot run on `experiment`."""
    offered = offered_features(experiment)
    if offered is None:
        probeable = sorted(_TARGETS)
        raise ProbeNotApplicableError(
            f"experiment kind {experiment.kind!r} does not expose a model to probes; "
            f"probeable kinds: {', '.join(probeable) or 'none'}"
        )
    missing = sorted(probe.needs - offered)
    if not missing and (reason := probe.refusal(experiment)) is not None:
        raise ProbeNotApplicableError(reason)
    if missing:
        raise ProbeNotApplicableError(
            f"probe {probe.kind!r} needs {', '.join(missing)}, which this "
            f"{experiment.kind} run does not offer (it offers: "
            f"{', '.join(sorted(offered)) or 'its training items only'})"
            + _how_to_offer(missing, experiment)
        )


_HOW_TO_OFFER = {
    Feature.canaries: "declare `canaries` in the experiment spec",
    Feature.fixed_vocabulary: "use a kind whose token ids do not depend on the data drawn "
    "(capacity_tradeoff, associative_recall); reference models for kinds that build their "
    "vocabulary from their data are not supported yet",
    Feature.held_out: "use a kind that keeps a held-out split",
    Feature.facts: "train on facts with a known generator (e.g. capacity_tradeoff task=facts)",
    Feature.generation: "use a kind whose training items are texts",
}


def _how_to_offer(missing: list[Feature], experiment: ExperimentSpec) -> str:
    hints = [_hint(feature, experiment) for feature in missing if feature in _HOW_TO_OFFER]
    return "; to get it, " + "; ".join(hints) if hints else ""


def _hint(feature: Feature, experiment: ExperimentSpec) -> str:
    if feature is Feature.canaries and "canaries" not in type(experiment).model_fields:
        return (
            f"{experiment.kind} has no `canaries` field; a kind offers exposure by declaring "
            "one (as capacity_tradeoff does)"
        )
    return _HOW_TO_OFFER[feature]


def build_target(experiment: ExperimentSpec, weights: Path, device: torch.device) -> ProbeTarget:
    """Rebuild the probe target of a finished run from its spec and final weights."""
    builder = target_builder(experiment.kind)
    if builder is None:
        raise ProbeNotApplicableError(f"experiment kind {experiment.kind!r} cannot be probed")
    target = builder.build(experiment, weights, device)
    target.model.eval()
    return target
