"""The registry of probe kinds: name → spec class, description and run function.

A probe kind registers its spec class and run function with `@register_probe` in its
own module under `core/probes/`; `core.catalog` imports every module there, so adding a
probe kind is one new file. Which experiments a probe can read is decided by its spec
(`ProbeSpec.inapplicability`), when it is submitted.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from core.probes.spec import ProbeSpec
from core.probes.target import ProbeTarget
from core.reporter import Reporter


@dataclass(frozen=True)
class ProbeInputs:
    """What a probe run gets: its target, any other experiment it named, by id, and the
    shadow models it asked for (`ProbeSpec.shadow_models`), in the order of their rows of
    the inclusion matrix."""

    target: ProbeTarget
    references: Mapping[uuid.UUID, ProbeTarget]
    shadows: Sequence[ProbeTarget] = ()


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


_PROBES: dict[str, ProbeKind[Any]] = {}


def register_probe(
    spec_class: type[ProbeSpecT], description: str
) -> Callable[[ProbeRunFn[ProbeSpecT]], ProbeRunFn[ProbeSpecT]]:
    """Decorator registering `run` as the probe kind named by `spec_class.kind`."""
    name = spec_class.model_fields["kind"].default
    if not isinstance(name, str):
        raise TypeError(f"{spec_class.__name__}.kind needs a literal default naming the kind")

    def decorate(run: ProbeRunFn[ProbeSpecT]) -> ProbeRunFn[ProbeSpecT]:
        if name in _PROBES:
            raise ValueError(f"probe kind {name!r} is registered twice")
        _PROBES[name] = ProbeKind(name, description, spec_class, run)
        ProbeSpec.accept_kind(name, spec_class)
        return run

    return decorate


def registered_probes() -> dict[str, ProbeKind[Any]]:
    """The probe kinds registered so far, by name (`core.catalog.all_probes` imports them)."""
    return dict(sorted(_PROBES.items()))
