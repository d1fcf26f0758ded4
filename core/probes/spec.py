"""The base of every probe kind's spec, and the rule that decides whether a probe can
apply to an experiment: it is checked when the probe is submitted (alone or in an
experiment's `probes`), so a probe that cannot apply is a 422 rather than a failed run.

`ProbeRequest`, the type of an experiment's `probes`, parses a raw probe spec as the
subclass its `kind` names: registering a probe kind (`register_probe`) records its spec
class here, so experiment specs can hold typed probes without importing the probe
modules (which import them: there is no cycle).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import SerializeAsAny, ValidatorFunctionWrapHandler, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from core.probes.features import Feature, ItemType
from core.spec_model import SpecModel

if TYPE_CHECKING:
    from core.specs import ExperimentSpec


@dataclass(frozen=True)
class ShadowRequest:
    """Shadow models a probe reads (`core.shadows`): `count` runs of the target's spec on
    the halves of its pool that the inclusion matrix drawn from `seed` gives them."""

    count: int
    seed: int


class ProbeSpec(SpecModel):
    """Base of every probe kind's spec; subclasses narrow `kind` to a literal and declare
    the target features they need."""

    kind: str
    seed: int = 0

    needs: ClassVar[frozenset[Feature]] = frozenset()
    # The item types this probe can read; token sequences unless it says otherwise.
    reads: ClassVar[frozenset[ItemType]] = frozenset({ItemType.tokens})

    # kind name → spec class, filled by `core.probes.registry.register_probe`, so only a
    # probe that can run is accepted in an experiment's `probes`.
    _by_kind: ClassVar[dict[str, type[ProbeSpec]]] = {}

    @classmethod
    def accept_kind(cls, name: str, spec_class: type[ProbeSpec]) -> None:
        """Parse a probe spec of kind `name` as `spec_class` from now on."""
        ProbeSpec._by_kind[name] = spec_class

    @model_validator(mode="wrap")
    @classmethod
    def _as_its_kind(cls, raw: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """Validating the base class validates as the subclass `kind` names."""
        if cls is not ProbeSpec or isinstance(raw, ProbeSpec) or not isinstance(raw, dict):
            return handler(raw)
        kind = raw.get("kind")
        probe_class = ProbeSpec._by_kind.get(kind) if isinstance(kind, str) else None
        if probe_class is None:
            raise PydanticCustomError(
                "unknown_probe",
                "unknown probe kind {kind}; known probe kinds: {known}",
                {"kind": repr(kind), "known": ", ".join(sorted(ProbeSpec._by_kind)) or "none"},
            )
        return probe_class.model_validate(raw)

    def refusal(self, experiment: ExperimentSpec) -> str | None:
        """Why this probe cannot run on `experiment` beyond a missing feature (e.g. prompts
        longer than the model's context); None if nothing else stands in the way."""
        return None

    def referenced_experiments(self) -> tuple[uuid.UUID, ...]:
        """Other experiments this probe reads besides its target (e.g. a reference model)."""
        return ()

    def shadow_models(self) -> ShadowRequest | None:
        """The shadow models this probe reads, which the server trains before it runs;
        None = it reads none."""
        return None

    def inapplicability(self, experiment: ExperimentSpec) -> str | None:
        """Why this probe cannot run on `experiment`, with how to get what is missing;
        None when it can."""
        offered = experiment.probe_features()
        if offered is None:
            return f"experiment kind {experiment.kind!r} does not expose a model to probes"
        items = experiment.probe_item_type()
        if items not in self.reads:
            return (
                f"probe {self.kind!r} reads {', '.join(sorted(self.reads))} items; a "
                f"{experiment.kind} run offers {items} items"
            )
        missing = sorted(self.needs - offered)
        if missing:
            return (
                f"probe {self.kind!r} needs {', '.join(missing)}, which this "
                f"{experiment.kind} run does not offer (it offers: "
                f"{', '.join(sorted(offered)) or 'its training items only'})"
                + _how_to_offer(missing, experiment)
            )
        return self.refusal(experiment)


_HOW_TO_OFFER = {
    Feature.canaries: "declare `canaries` in the experiment spec",
    Feature.disjoint_reference: 'submit the experiment with `reference_data: "reserve"` and '
    'train the reference as the same spec with `reference_data: "train_on"` (associative_recall '
    "needs only another seed)",
    Feature.held_out: "use a kind that keeps a held-out split",
    Feature.facts: "train on facts with a known generator (e.g. capacity_tradeoff task=facts)",
    Feature.generation: "use a kind whose training items are texts",
    Feature.shadow_training: "use a kind whose spec has `pool_subset` (associative_recall, "
    "kg_memorization), on a run that is not itself a shadow",
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


# An experiment's probe: any registered probe spec, parsed as its kind and dumped whole.
# Its schema is an object naming its `kind`: the probe kinds' own schemas are listed by
# GET /v1/probe-kinds and in POST /v1/probes, and a generated client need not know them all.
ProbeRequest = Annotated[
    SerializeAsAny[ProbeSpec],
    WithJsonSchema(
        {
            "type": "object",
            "required": ["kind"],
            "properties": {"kind": {"type": "string", "description": "A probe kind."}},
            "additionalProperties": True,
            "description": 'A probe spec, e.g. {"kind": "loss_mia"}; its fields are '
            "those of the probe kind (GET /v1/probe-kinds).",
        }
    ),
]
