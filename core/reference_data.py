"""Data set aside for a reference model: what makes `reference_mia` sound on kinds whose
vocabulary is built from their data.

A reference attack scores ℓ_reference(x) − ℓ_target(x). The reference must have been
trained on data from the same generator that is disjoint from the target's members *and*
non-members (a reference that saw the non-members would make them look like members of
nothing), and it must read the target's items with the same token ids.

Kinds that draw their names from their data (fictional events, graph concepts, country
names) offer that with one field, `reference_data`:
  - "reserve" (on the target): a further slice of the generator's data, as large as the
    training data, is drawn and set aside: never trained on, never a non-member; the
    vocabulary covers it.
  - "train_on" (on the reference): the same spec, trained on that slice instead of the
    target's training data. Both runs have the same vocabulary.
  - null: nothing is set aside (as before the field existed); no disjoint reference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

if TYPE_CHECKING:
    from core.specs import ExperimentSpec

ReferenceData = Literal["reserve", "train_on"]


def reference_data_field() -> ReferenceData | None:
    """The `reference_data` field, described once for every kind that has it."""
    return Field(  # type: ignore[no-any-return]
        None,
        description='"reserve": set aside a disjoint slice of the generator\'s data, as large '
        "as the training data, for a reference model (this run is the target of "
        'reference_mia); "train_on": train on that slice instead (this run is the '
        "reference); null: nothing set aside.",
    )


def reserved_slice_refusal(
    target: ExperimentSpec, reference: ExperimentSpec, data_fields: frozenset[str]
) -> str | None:
    """Why `reference` is not the run trained on `target`'s reserved slice; None if it is.

    data_fields: the spec fields that decide the data and its vocabulary, which the two
    runs must share (model, training and, where it does not draw the data, seed may differ).
    """
    if getattr(target, "reference_data", None) != "reserve":
        return (
            f"this {target.kind} run set no data aside for a reference: submit it with "
            '`reference_data: "reserve"`'
        )
    if getattr(reference, "reference_data", None) != "train_on":
        return (
            'the reference must be the same spec with `reference_data: "train_on"`, '
            "trained on the slice the target set aside"
        )
    differing = sorted(
        name for name in data_fields if getattr(target, name) != getattr(reference, name)
    )
    if differing:
        return (
            f"the reference's data differs from the target's in {', '.join(differing)}: "
            "only `reference_data` (and model or training settings) may differ"
        )
    return None


def reserve_reference_spec(target: ExperimentSpec) -> ExperimentSpec | None:
    """The reference run's spec for a target that set a slice aside: the same spec,
    trained on that slice (its own probes left out); None if it set nothing aside."""
    if getattr(target, "reference_data", None) != "reserve":
        return None
    fields = target.model_dump(mode="json", exclude={"probes"})
    return type(target).model_validate({**fields, "reference_data": "train_on"})


class ReservesReferenceData:
    """For the spec of a kind with a `reference_data` field: which runs can be its
    reference, and the reference's spec. The kind lists in `data_fields` the fields that
    decide its data and vocabulary. Put it before the spec's base class."""

    data_fields: ClassVar[frozenset[str]]

    def reference_refusal(self, reference: ExperimentSpec) -> str | None:
        return reserved_slice_refusal(self, reference, self.data_fields)  # type: ignore[arg-type]

    def reference_spec(self) -> ExperimentSpec | None:
        return reserve_reference_spec(self)  # type: ignore[arg-type]
