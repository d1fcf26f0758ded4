"""The registry of experiment kinds: name → spec class, description, build and run.

A kind registers itself with `@register_kind` in its own module under
`core/experiments/`; `core.catalog` imports every module there, so adding a kind is one
new file. Registration checks the contract a kind must keep, so that a kind missing a
piece fails when it is imported, not when a researcher submits it:

- its spec derives from `TrainedSpec` (it trains; it has a `train` default and gives
  its parameter count and data size) or `ComputedSpec` (it names its own limits);
- it declares `smoke_fields` for the contract test;
- a trained kind gives `build(spec) -> Built`, which both its run and its probe target use;
- a trained kind may give `prepare(spec) -> Prepared` (its parts and its report on the
  trained model, `core.prepared`), which lets its runs train batched with others
  (`core.training.group`); a kind without one trains alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch

from core.built import Built
from core.prepared import Prepared
from core.probes.target import ProbeTarget
from core.reporter import Reporter
from core.specs import ComputedSpec, ExperimentSpec, TrainedSpec

SpecT = TypeVar("SpecT", bound=ExperimentSpec)
RunFn = Callable[[SpecT, Reporter], dict[str, Any]]
BuildFn = Callable[[SpecT], Built]
PrepareFn = Callable[[SpecT], Prepared]
# A computing kind's probe target, from the spec and the folder of the run's saved artifacts.
ArtifactTargetFn = Callable[[SpecT, Path, torch.device], ProbeTarget]


class UnknownKindError(LookupError):
    """No experiment kind of that name is registered."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown experiment kind {name!r}; known kinds: {', '.join(known)}")
        self.name = name


class KindContractError(TypeError):
    """A kind is registered without a piece of the contract every kind keeps."""


@dataclass(frozen=True)
class ExperimentKind(Generic[SpecT]):
    """One registered kind. `run` returns the result as a JSON-serialisable dict.

    build:          spec → its data, vocabulary and model factory (trained kinds).
    prepare:        spec → its `Built` and its report on the trained model; None = the
                    kind's runs cannot train batched (`core.batching`).
    target_from_artifacts: how a computing kind's probe target is read back from what
                    its run saved; None = its runs cannot be probed.
    """

    name: str
    description: str
    spec_class: type[SpecT]
    run: RunFn[SpecT]
    build: BuildFn[SpecT] | None = None
    target_from_artifacts: ArtifactTargetFn[SpecT] | None = None
    prepare: PrepareFn[SpecT] | None = None

    @property
    def trains(self) -> bool:
        return issubclass(self.spec_class, TrainedSpec)

    def default_spec(self) -> SpecT:
        """The spec a bare `{"kind": name}` request gets."""
        return self.spec_class.model_validate({"kind": self.name})


_KINDS: dict[str, ExperimentKind[Any]] = {}


def register_kind(
    spec_class: type[SpecT],
    description: str,
    *,
    build: BuildFn[SpecT] | None = None,
    target_from_artifacts: ArtifactTargetFn[SpecT] | None = None,
    prepare: PrepareFn[SpecT] | None = None,
) -> Callable[[RunFn[SpecT]], RunFn[SpecT]]:
    """Decorator registering `run` as the kind named by `spec_class`'s `kind` literal."""
    name = spec_class.model_fields["kind"].default
    if not isinstance(name, str):
        raise KindContractError(
            f"{spec_class.__name__}.kind needs a literal default naming the kind"
        )
    _check_contract(name, spec_class, build, prepare)

    def decorate(run: RunFn[SpecT]) -> RunFn[SpecT]:
        if name in _KINDS:
            raise ValueError(f"experiment kind {name!r} is registered twice")
        _KINDS[name] = ExperimentKind(
            name, description, spec_class, run, build, target_from_artifacts, prepare
        )
        return run

    return decorate


def _check_contract(
    name: str, spec_class: type[ExperimentSpec], build: object, prepare: object
) -> None:
    if not issubclass(spec_class, TrainedSpec | ComputedSpec):
        raise KindContractError(
            f"kind {name!r}: {spec_class.__name__} must derive from TrainedSpec (a kind "
            "that trains) or ComputedSpec (a kind that computes without training)"
        )
    if not spec_class.smoke_fields:
        raise KindContractError(f"kind {name!r}: {spec_class.__name__} declares no smoke_fields")
    if issubclass(spec_class, TrainedSpec):
        if spec_class.model_fields["train"].is_required():
            raise KindContractError(f"kind {name!r}: `train` needs the kind's default schedule")
        for method in ("parameter_count", "dataset_items"):
            if getattr(spec_class, method) is getattr(TrainedSpec, method):
                raise KindContractError(
                    f"kind {name!r}: {spec_class.__name__} must give {method}()"
                )
        if build is None:
            raise KindContractError(f"kind {name!r} trains, so it must register its build()")
        return
    if prepare is not None:
        raise KindContractError(f"kind {name!r} computes without training: it has no prepare()")
    if spec_class.compute_limits is ComputedSpec.compute_limits:
        raise KindContractError(f"kind {name!r}: {spec_class.__name__} must give compute_limits()")


def registered_kinds() -> dict[str, ExperimentKind[Any]]:
    """The kinds registered so far, by name (`core.catalog.all_kinds` imports them all)."""
    return dict(sorted(_KINDS.items()))


def unregister_kind(name: str) -> None:
    """Remove a kind (for tests that register a kind of their own)."""
    _KINDS.pop(name, None)
