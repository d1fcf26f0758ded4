"""A filter's `spec.` fields checked against the kinds' specs: a path no kind has, or a
value of a type the field never holds, is a 422 at its position, not a filter that
silently matches nothing.

The paths and their types come from every registered kind's JSON schema (nested specs
and union members included; lists are not entered).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from core.catalog import all_kinds
from store import query

# A JSON schema type, as the filter's literals see it.
_LITERAL_TYPES = {"integer": "number", "number": "number", "string": "string", "boolean": "bool"}


@cache
def spec_field_types() -> Mapping[tuple[str, ...], frozenset[str]]:
    """Every path into any kind's spec, with the literal types its value can take ("number",
    "string", "bool"; empty for an object or a field of any type)."""
    found: dict[tuple[str, ...], set[str]] = {}
    for kind in all_kinds().values():
        schema = kind.spec_class.model_json_schema()
        for path, types in _walk(schema, schema.get("$defs", {}), ()):
            found.setdefault(path, set()).update(types)
    return {path: frozenset(types) for path, types in found.items()}


def _walk(
    node: Mapping[str, Any], defs: Mapping[str, Any], path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], set[str]]]:
    node = _resolved(node, defs)
    alternatives = node.get("anyOf") or node.get("oneOf") or node.get("allOf")
    if alternatives:
        for alternative in alternatives:
            yield from _walk(alternative, defs, path)
        return
    if path:
        yield path, _types(node)
    for name, child in (node.get("properties") or {}).items():
        yield from _walk(child, defs, (*path, name))


def _resolved(node: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    reference = node.get("$ref")
    if isinstance(reference, str) and reference.startswith("#/$defs/"):
        return dict(defs[reference.removeprefix("#/$defs/")])
    return node


def _types(node: Mapping[str, Any]) -> set[str]:
    declared = node.get("type")
    names = declared if isinstance(declared, list) else [declared]
    types = {_LITERAL_TYPES[name] for name in names if name in _LITERAL_TYPES}
    for value in [*node.get("enum", []), *([node["const"]] if "const" in node else [])]:
        types.add("bool" if isinstance(value, bool) else _literal_type(value))
    return types


def _literal_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, int | float) else "string"


def checked(expr: query.Expr) -> query.Expr:
    """`expr`, or a QueryError at the first `spec.` field no kind has or compared with a
    value its field never holds."""
    for field, values, position in _comparisons(expr):
        if field.root != "spec" or not field.path:
            continue
        types = spec_field_types().get(field.path)
        if types is None:
            raise query.QueryError(f"no kind's spec has a field {field}", field.position)
        for value in values:
            if value is not None and types and _literal_type(value) not in types:
                held = " or ".join(sorted(types))
                raise query.QueryError(
                    f"{field} holds a {held}, not a {_literal_type(value)} like {value!r}",
                    position,
                )
    return expr


def _comparisons(
    expr: query.Expr,
) -> Iterator[tuple[query.Field, tuple[Any, ...], int]]:
    if isinstance(expr, query.Comparison):
        yield expr.field, (expr.value,), expr.position
    elif isinstance(expr, query.Membership):
        yield expr.field, expr.values, expr.position
    elif isinstance(expr, query.IsNull):
        yield expr.field, (), expr.field.position
    elif isinstance(expr, query.Not):
        yield from _comparisons(expr.operand)
    elif isinstance(expr, query.And | query.Or):
        for operand in expr.operands:
            yield from _comparisons(operand)
