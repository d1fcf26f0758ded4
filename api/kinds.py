"""GET /v1/kinds: what can be submitted, with each kind's JSON schema and default spec."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.errors import NotFoundError
from api.schemas import KindOut
from core.catalog import all_kinds
from core.registry import ExperimentKind

router = APIRouter(prefix="/v1/kinds", tags=["kinds"])


def _describe(kind: ExperimentKind[Any]) -> KindOut:
    return KindOut(
        name=kind.name,
        description=kind.description,
        json_schema=kind.spec_class.model_json_schema(),
        default_spec=kind.spec_class.template(),
    )


@router.get("", response_model=list[KindOut])
def list_kinds() -> list[KindOut]:
    """Every experiment kind this server runs."""
    return [_describe(kind) for kind in all_kinds().values()]


@router.get("/{name}", response_model=KindOut)
def get_kind(name: str) -> KindOut:
    """One experiment kind."""
    kinds = all_kinds()
    if name not in kinds:
        raise NotFoundError(f"unknown experiment kind {name!r}; known kinds: {', '.join(kinds)}")
    return _describe(kinds[name])
