"""The base of every spec (experiment, probe, and their parts): frozen validation, errors
located at the field to change, and the hash that says when two specs train the same thing."""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError


class SpecModel(BaseModel):
    """Base of every spec: frozen, and a misspelt field or a NaN is an error, not ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    # Fields that cannot change a run's numbers (limits, bookkeeping): not hashed.
    hash_exclude: ClassVar[frozenset[str]] = frozenset()
    # Fields added after specs were first stored, left out of the hash while None, so
    # that a spec stored before a field existed hashes as it did then.
    added_fields: ClassVar[frozenset[str]] = frozenset()
    # Fields added after specs were first stored whose value for a new request differs from
    # what specs meant before the field existed. A request that leaves one out gets the
    # value here; a stored spec that lacks it keeps None, which the field documents as the
    # old behaviour (and which, like any added field, is left out of the hash).
    request_defaults: ClassVar[dict[str, Any]] = {}
    # The converse, for a field whose old meaning has a name of its own: a stored spec that
    # lacks it gets the value here (what it meant then); a new request gets the field's
    # default. The kind keeps the hash stable (e.g. by leaving the old value out of it).
    stored_defaults: ClassVar[dict[str, Any]] = {}
    # Groups of fields of which a request gives at most one (e.g. warmup in steps or as a
    # fraction): giving one replaces the others' defaults rather than conflicting with them.
    exclusive_fields: ClassVar[tuple[frozenset[str], ...]] = ()

    @classmethod
    def later_fields(cls) -> frozenset[str]:
        """Fields added after specs were first stored (left out of the hash while None)."""
        return cls.added_fields | cls.request_defaults.keys() | cls.stored_defaults.keys()

    @model_validator(mode="before")
    @classmethod
    def _fill_later_fields(cls, raw: Any, info: ValidationInfo) -> Any:
        """A later field left out gets what it means for this origin: the value a stored
        spec meant before the field existed, or a new request's default."""
        if not isinstance(raw, dict):
            return raw
        defaults = cls.stored_defaults if stored(info) else cls.request_defaults
        return {**defaults, **raw} if defaults else raw


def field_error(
    field: str | tuple[str | int, ...], message: str, value: Any = None
) -> ValidationError:
    """A validation error located at `field` (a name or a path below the model that raises
    it), so a cross-field rule reports the field to change, not the whole spec."""
    location = (field,) if isinstance(field, str) else field
    return ValidationError.from_exception_data(
        "spec",
        [
            InitErrorDetails(
                type=PydanticCustomError("value_error", message),
                loc=location,
                input=value,
            )
        ],
    )


def stored(info: ValidationInfo) -> bool:
    """Whether the spec being validated was stored by an earlier version of memlab (see
    `core.catalog.parse_spec`): rules added since then do not apply to it."""
    return bool(info.context and info.context.get("stored"))


def spec_hash(spec: SpecModel) -> str:
    """SHA-256 of everything in the spec that can change the numbers, defaults filled in.

    Two specs hash equal exactly when they train the same thing: `{"kind": k}` and the
    same spec with every default written out are equal; a different seed, width or
    learning rate is not; specs that differ only in wall-time limit or checkpoint
    interval hash equal.
    """
    data = spec.model_dump(mode="json", exclude=_hash_exclusions(spec))
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _hash_exclusions(spec: SpecModel) -> dict[str, Any]:
    exclusions: dict[str, Any] = dict.fromkeys(spec.hash_exclude, True)
    exclusions |= {name: True for name in spec.later_fields() if getattr(spec, name) is None}
    for name in type(spec).model_fields:
        child = getattr(spec, name)
        if isinstance(child, SpecModel) and name not in exclusions:
            nested = _hash_exclusions(child)
            if nested:
                exclusions[name] = nested
    return exclusions
