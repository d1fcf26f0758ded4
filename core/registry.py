"""The registry of experiment kinds: name → spec class, description and run function.

A kind registers itself with `@register_kind` in its own module under
`core/experiments/`; `core.experiments` imports every module there, so adding a kind
is one new file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from core.reporter import Reporter
from core.specs import ExperimentSpec

SpecT = TypeVar("SpecT", bound=ExperimentSpec)
RunFn = Callable[[SpecT, Reporter], dict[str, Any]]


class UnknownKindError(LookupError):
    """No experiment kind of that name is registered."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown experiment kind {name!r}; known kinds: {', '.join(known)}")
        self.name = name


@dataclass(frozen=True)
class ExperimentKind(Generic[SpecT]):
    """One registered kind. `run` returns the result as a JSON-serialisable dict."""

    name: str
    description: str
    spec_class: type[SpecT]
    run: RunFn[SpecT]

    def default_spec(self) -> SpecT:
        """The spec a bare `{"kind": name}` request gets."""
        return self.spec_class.model_validate({"kind": self.name})


_KINDS: dict[str, ExperimentKind[Any]] = {}


def register_kind(
    spec_class: type[SpecT], description: str
) -> Callable[[RunFn[SpecT]], RunFn[SpecT]]:
    """Decorator registering `run` as the kind named by `spec_class`'s `kind` literal."""
    name = spec_class.model_fields["kind"].default
    if not isinstance(name, str):
        raise TypeError(f"{spec_class.__name__}.kind needs a literal default naming the kind")

    def decorate(run: RunFn[SpecT]) -> RunFn[SpecT]:
        if name in _KINDS:
            raise ValueError(f"experiment kind {name!r} is registered twice")
        _KINDS[name] = ExperimentKind(name, description, spec_class, run)
        return run

    return decorate


def all_kinds() -> dict[str, ExperimentKind[Any]]:
    """Every registered kind by name, after importing the built-in kinds."""
    import core.experiments  # noqa: F401  (registers the built-in kinds)

    return dict(sorted(_KINDS.items()))


def get_kind(name: str) -> ExperimentKind[Any]:
    """The kind called `name`, or UnknownKindError listing the known ones."""
    kinds = all_kinds()
    if name not in kinds:
        raise UnknownKindError(name, list(kinds))
    return kinds[name]


def parse_spec(raw: dict[str, Any]) -> ExperimentSpec:
    """Validate a stored spec dict against its kind's spec class (raises pydantic's error).

    A stored spec may predate rules added since (e.g. decay_steps ≤ steps): it keeps the
    meaning it had when it was accepted, so those rules are not applied (`core.specs.stored`).
    A new submission is validated by the API's request model, with every rule.
    """
    kind_name = raw.get("kind")
    if not isinstance(kind_name, str):
        raise UnknownKindError(repr(kind_name), list(all_kinds()))
    return get_kind(kind_name).spec_class.model_validate(raw, context={"stored": True})
