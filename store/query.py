"""The filter language of run listings (`?where=` and `?sort=`), parsed to a small AST and
compiled to SQLAlchemy expressions over `runs`: the database filters and sorts, never Python.

Grammar (keywords are case-insensitive; whitespace is free between tokens):

    filter     := or_expr END
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | primary
    primary    := "(" or_expr ")" | comparison
    comparison := field OP value
                | field ["not"] "in" "(" value ("," value)* ")"
                | field "is" ["not"] "null"
    field      := ROOT ("." segment)*           only spec and result take segments
    segment    := NAME | STRING                 a STRING for keys like "train/acc"
    value      := NUMBER | STRING | "true" | "false" | "null"
    OP         := "=" | "!=" | "<" | "<=" | ">" | ">="
    ROOT       := spec | result | status | kind | tag | sweep_id | created_at | name | id
    sort       := ["-"] field                    "-" for descending

NUMBER is JSON's (`14`, `-0.5`, `3e-4`); STRING is double-quoted with JSON's backslash
escapes. So `not` binds tighter than `and`, and `and` tighter than `or`:

>>> parse_filter('not status = "failed" and spec.model.n_embd in (14, 28)')
And(operands=(Not(operand=Comparison(field=Field(root='status', path=(), position=4), \
op='=', value='failed', position=11)), Membership(field=Field(root='spec', \
path=('model', 'n_embd'), position=26), values=(14, 28), position=44)))

Semantics are SQL's three-valued logic. A missing JSON value, a JSON null and a value of
another type than the literal (a string where the filter gives a number) are all null;
every comparison with null is unknown, and `not` of unknown is unknown, so a row whose
value is missing matches neither `x = 1` nor `not (x = 1)` nor `x != 1`. `x is null`
asks for those rows. `= null` is refused, since it could never be true. `tag` and
`sweep_id` are memberships instead (a run has many tags and may belong to several sweeps):
`tag = "x"` means "tagged x", `tag != "x"` "not tagged x", `tag is null` "no tags".

Errors, syntax and types alike, are `QueryError`s carrying the character offset (from 0)
at fault; they are all raised by `parse_filter` / `parse_sort`, before any SQL is built.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Float,
    String,
    Text,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    not_,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import InstrumentedAttribute

from store.models import Run, RunStatus, RunTag, SweepRun

Scalar = int | float | str | bool
"""A literal of the language; null is not one: it appears only in `is [not] null`."""

MAX_NESTING = 64

# --- AST -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """A field: a column (`status`), a membership (`tag`), or a path into a JSON column
    (`spec.model.n_embd` → root "spec", path ("model", "n_embd"))."""

    root: str
    path: tuple[str, ...]
    position: int

    def __str__(self) -> str:
        return ".".join((self.root, *self.path))


@dataclass(frozen=True)
class Comparison:
    field: Field
    op: str  # one of OPERATORS
    value: Scalar
    position: int  # of the operator


@dataclass(frozen=True)
class Membership:
    """`field in (values…)`; `not in` parses to `Not(Membership(...))`."""

    field: Field
    values: tuple[Scalar, ...]
    position: int  # of `in`


@dataclass(frozen=True)
class IsNull:
    field: Field
    negated: bool  # `is not null`


@dataclass(frozen=True)
class Not:
    operand: Expr


@dataclass(frozen=True)
class And:
    operands: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Expr, ...]


Expr = Comparison | Membership | IsNull | Not | And | Or


@dataclass(frozen=True)
class Sort:
    field: Field
    descending: bool


class QueryError(ValueError):
    """A filter or sort that does not parse, or compares a field with a value of the wrong
    type; `position` is the offset (from 0) of the character at fault."""

    def __init__(self, reason: str, position: int) -> None:
        super().__init__(f"at position {position}: {reason}")
        self.reason = reason
        self.position = position

    def caret(self, text: str) -> str:
        """The text with a caret under the character at fault, on two lines."""
        return f"{text}\n{' ' * self.position}^"


# --- Fields and their types ----------------------------------------------------------

OPERATORS = ("=", "!=", "<", "<=", ">", ">=")
_ORDERING = frozenset({"<", "<=", ">", ">="})
JSON_ROOTS = ("spec", "result")


@dataclass(frozen=True)
class _Column:
    """What a non-JSON field accepts: string literals, converted by `convert` (which
    raises ValueError with a reason), with ordering operators where `ordered`."""

    ordered: bool
    convert: Callable[[str], Any]
    membership: bool = False  # tag, sweep_id: "has one such row", not a column value
    sortable: bool = True


def _status(value: str) -> RunStatus:
    try:
        return RunStatus(value)
    except ValueError:
        known = ", ".join(s.value for s in RunStatus)
        raise ValueError(f"status is one of {known}; not {value!r}") from None


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a UUID") from None


def _timestamp(value: str) -> datetime:
    """An ISO 8601 date or timestamp; one without a zone is UTC."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f'{value!r} is not an ISO 8601 timestamp (e.g. "2026-01-31T12:00:00Z")'
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _string(value: str) -> str:
    return value


_COLUMNS: dict[str, _Column] = {
    "status": _Column(ordered=False, convert=_status),
    "kind": _Column(ordered=True, convert=_string),
    "name": _Column(ordered=True, convert=_string),
    "id": _Column(ordered=False, convert=_uuid),
    "created_at": _Column(ordered=True, convert=_timestamp),
    "tag": _Column(ordered=False, convert=_string, membership=True, sortable=False),
    "sweep_id": _Column(ordered=False, convert=_uuid, membership=True, sortable=False),
}
ROOTS = (*JSON_ROOTS, *_COLUMNS)


def _type_name(value: Scalar) -> str:
    if isinstance(value, bool):
        return "boolean"
    return "string" if isinstance(value, str) else "number"


# --- Tokenizer -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # NAME NUMBER STRING OP ( ) , . END
    text: str
    value: Scalar | None
    position: int


_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATOR = re.compile(r"!=|<=|>=|=|<|>")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_LARGEST = 2**63 - 1  # SQLite's integers
_INFINITIES = (float("inf"), float("-inf"))
_KEYWORDS = frozenset({"and", "or", "not", "in", "is", "null", "true", "false"})


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char.isspace():
            i += 1
        elif char in "(),.":
            tokens.append(_Token(char, char, None, i))
            i += 1
        elif char == '"':
            string, end = _read_string(text, i)
            tokens.append(_Token("STRING", text[i:end], string, i))
            i = end
        elif match := _NUMBER.match(text, i):
            end = match.end()
            if end < len(text) and (text[end].isalnum() or text[end] in "_."):
                raise QueryError(f"malformed number {text[i : end + 1]!r}", i)
            number = match.group()
            parsed = float(number) if any(c in number for c in ".eE") else int(number)
            if (isinstance(parsed, int) and abs(parsed) > _LARGEST) or parsed in _INFINITIES:
                raise QueryError(f"number {number} is out of range", i)
            tokens.append(_Token("NUMBER", number, parsed, i))
            i = end
        elif match := _NAME.match(text, i):
            tokens.append(_Token("NAME", match.group(), None, i))
            i = match.end()
        elif match := _OPERATOR.match(text, i):
            tokens.append(_Token("OP", match.group(), None, i))
            i = match.end()
        else:
            raise QueryError(f"unexpected character {char!r}", i)
    tokens.append(_Token("END", "", None, len(text)))
    return tokens


def _read_string(text: str, start: int) -> tuple[str, int]:
    """The string whose opening quote is at `start`, and the offset after its closing one."""
    out: list[str] = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == '"':
            return "".join(out), i + 1
        if char == "\0":
            raise QueryError("a string cannot hold the NUL character", i)
        if char != "\\":
            out.append(char)
            i += 1
            continue
        escape = text[i + 1 : i + 2]
        if escape in _ESCAPES:
            out.append(_ESCAPES[escape])
            i += 2
        elif escape == "u" and (code := _hex4(text, i + 2)) is not None:
            low = _hex4(text, i + 8) if text[i + 6 : i + 8] == "\\u" else None
            if 0xD800 <= code < 0xDC00 and low is not None and 0xDC00 <= low < 0xE000:
                code, i = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00), i + 12  # a pair
            elif 0xD800 <= code < 0xE000 or code == 0:
                raise QueryError(f"a string cannot hold {text[i : i + 6]}", i)
            else:
                i += 6
            out.append(chr(code))
        else:
            raise QueryError(f"unknown escape '\\{escape}' in a string", i)
    raise QueryError("unterminated string", start)


def _hex4(text: str, start: int) -> int | None:
    digits = text[start : start + 4]
    return int(digits, 16) if re.fullmatch(r"[0-9a-fA-F]{4}", digits) else None


# --- Parser --------------------------------------------------------------------------


class _Parser:
    """Recursive descent over the tokens, one method per grammar rule; it checks each
    comparison's types as it builds it, so a parsed filter always compiles."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.index = 0
        self.depth = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.token
        self.index += 1
        return token

    def at_keyword(self, *words: str) -> bool:
        return self.token.kind == "NAME" and self.token.text.lower() in words

    def fail(self, reason: str, token: _Token | None = None) -> QueryError:
        return QueryError(reason, (token or self.token).position)

    def describe(self, token: _Token) -> str:
        return "the end of the filter" if token.kind == "END" else repr(token.text)

    def filter(self) -> Expr:
        if self.token.kind == "END":
            raise self.fail("the filter is empty")
        expr = self.or_expr()
        if self.token.kind != "END":
            raise self.fail(
                f"expected 'and', 'or' or the end of the filter, not {self.describe(self.token)}"
            )
        return expr

    def or_expr(self) -> Expr:
        operands = [self.and_expr()]
        while self.at_keyword("or"):
            self.advance()
            operands.append(self.and_expr())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def and_expr(self) -> Expr:
        operands = [self.not_expr()]
        while self.at_keyword("and"):
            self.advance()
            operands.append(self.not_expr())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def not_expr(self) -> Expr:
        if not self.at_keyword("not"):
            return self.primary()
        with self.nested():
            self.advance()
            return Not(self.not_expr())

    def primary(self) -> Expr:
        if self.token.kind != "(":
            return self.comparison()
        with self.nested():
            opening = self.advance()
            expr = self.or_expr()
            if self.token.kind != ")":
                raise self.fail(
                    f"expected ')' to close the '(' at position {opening.position}, "
                    f"not {self.describe(self.token)}"
                )
            self.advance()
            return expr

    def nested(self) -> _Nesting:
        return _Nesting(self)

    def comparison(self) -> Expr:
        field = self.field()
        if self.token.kind == "OP":
            operator = self.advance()
            value = self.value(after=operator.text)
            return self.checked_comparison(field, operator, value)
        if self.at_keyword("is"):
            self.advance()
            negated = self.at_keyword("not")
            if negated:
                self.advance()
            if not self.at_keyword("null"):
                raise self.fail(f"expected 'null' after 'is', not {self.describe(self.token)}")
            self.advance()
            return IsNull(field, negated)
        negated = self.at_keyword("not")
        if negated:
            self.advance()
            if not self.at_keyword("in"):
                raise self.fail(f"expected 'in' after 'not', not {self.describe(self.token)}")
        if self.at_keyword("in"):
            membership = self.membership(field)
            return Not(membership) if negated else membership
        raise self.fail(
            f"expected an operator (=, !=, <, <=, >, >=, in, is) after '{field}', "
            f"not {self.describe(self.token)}"
        )

    def field(self) -> Field:
        token = self.token
        if token.kind != "NAME" or token.text.lower() in _KEYWORDS:
            raise self.fail(f"expected a field, not {self.describe(token)}")
        if token.text not in ROOTS:
            raise self.fail(f"unknown field {token.text!r}; fields are {', '.join(ROOTS)}")
        self.advance()
        path: list[str] = []
        while self.token.kind == ".":
            self.advance()
            segment = self.token
            if segment.kind == "STRING" and '"' in str(segment.value):
                raise self.fail("a key cannot hold a double quote", segment)
            if segment.kind == "NAME" or (segment.kind == "STRING" and segment.value):
                path.append(segment.text if segment.kind == "NAME" else str(segment.value))
                self.advance()
            else:
                raise self.fail(
                    f"expected a key after '.', not {self.describe(segment)}"
                    ' (quote a key that is not a plain name: result.final."train/acc")'
                )
        if token.text in JSON_ROOTS and not path:
            raise self.fail(
                f"{token.text!r} needs a path to a value, e.g. {token.text}.train.lr", token
            )
        if token.text not in JSON_ROOTS and path:
            raise self.fail(f"{token.text!r} has no fields", token)
        return Field(token.text, tuple(path), token.position)

    def value(self, after: str) -> tuple[Scalar | None, _Token]:
        token = self.token
        if token.kind in ("NUMBER", "STRING"):
            self.advance()
            return token.value, token
        if self.at_keyword("true", "false", "null"):
            self.advance()
            word = token.text.lower()
            return (None if word == "null" else word == "true"), token
        raise self.fail(f"expected a value after '{after}', not {self.describe(token)}")

    def membership(self, field: Field) -> Membership:
        keyword = self.advance()
        if self.token.kind != "(":
            raise self.fail(f"expected '(' after 'in', not {self.describe(self.token)}")
        self.advance()
        values: list[Scalar] = []
        while True:
            value, token = self.value(after="," if values else "(")
            values.append(self.checked_value(field, "in", value, token))
            if self.token.kind == ")":
                self.advance()
                break
            if self.token.kind != ",":
                raise self.fail(f"expected ',' or ')' in a list, not {self.describe(self.token)}")
            self.advance()
        kinds = {_type_name(v) for v in values}
        if len(kinds) > 1:
            raise self.fail(
                "the values of 'in' must all be numbers, all strings or all booleans", keyword
            )
        return Membership(field, tuple(values), keyword.position)

    def checked_comparison(
        self, field: Field, operator: _Token, value: tuple[Scalar | None, _Token]
    ) -> Comparison:
        literal_value, token = value
        checked = self.checked_value(field, operator.text, literal_value, token)
        column = _COLUMNS.get(field.root)
        if operator.text in _ORDERING:
            if column is not None and not column.ordered:
                raise self.fail(f"{field} takes =, != and in, not '{operator.text}'", operator)
            if isinstance(checked, bool):
                raise self.fail(
                    f"true and false compare with = and != only, not '{operator.text}'", operator
                )
        return Comparison(field, operator.text, checked, operator.position)

    def checked_value(
        self, field: Field, operator: str, value: Scalar | None, token: _Token
    ) -> Scalar:
        """The literal, if `field` can be compared with it; a QueryError at it otherwise."""
        if value is None:
            instead = {"=": "is null", "!=": "is not null"}.get(operator)
            hint = f"; use '{field} {instead}'" if instead else "; use 'is null'"
            raise self.fail(f"a comparison with null is never true{hint}", token)
        column = _COLUMNS.get(field.root)
        if column is None:
            return value
        if not isinstance(value, str):
            raise self.fail(
                f"{field} compares with a string, not a {_type_name(value)} ({token.text})", token
            )
        try:
            column.convert(value)
        except ValueError as error:
            raise self.fail(str(error), token) from None
        return value


class _Nesting:
    """Counts parentheses and `not`s, refusing a filter nested deeper than MAX_NESTING."""

    def __init__(self, parser: _Parser) -> None:
        self.parser = parser

    def __enter__(self) -> None:
        self.parser.depth += 1
        if self.parser.depth > MAX_NESTING:
            raise self.parser.fail(f"the filter nests deeper than {MAX_NESTING} levels")

    def __exit__(self, *_: object) -> None:
        self.parser.depth -= 1


def parse_filter(text: str) -> Expr:
    """The AST of a `where=` filter; a QueryError with the offset at fault otherwise."""
    return _Parser(text).filter()


def parse_sort(text: str) -> Sort:
    """`field` (ascending) or `-field` (descending); tag and sweep_id cannot be sorted by."""
    descending = text.startswith("-")
    parser = _Parser(text[1:] if descending else text)
    if parser.token.kind == "END":
        raise QueryError("expected a field to sort by", len(text))
    offset = 1 if descending else 0
    try:
        field = parser.field()
        if parser.token.kind != "END":
            raise parser.fail(f"expected the end of the sort, not {parser.describe(parser.token)}")
    except QueryError as error:
        raise QueryError(error.reason, error.position + offset) from None
    column = _COLUMNS.get(field.root)
    if column is not None and not column.sortable:
        raise QueryError(f"cannot sort by {field}: a run may have several", offset)
    return Sort(Field(field.root, field.path, field.position + offset), descending)


# --- Compiler ------------------------------------------------------------------------


@dataclass(frozen=True)
class _JsonValue:
    """The value at one path of a JSON column, as SQL expressions that are NULL unless the
    value has their type: so a string never reaches a numeric comparison (on PostgreSQL
    a CASE is the only guard the planner cannot reorder)."""

    number: ColumnElement[Any]
    string: ColumnElement[Any]
    boolean: ColumnElement[Any]  # 1 for true, 0 for false
    is_null: ColumnElement[bool]  # missing, or JSON null
    rank: ColumnElement[Any]  # for sorting: numbers, strings, booleans, then the rest

    def of_type(self, value: Scalar) -> ColumnElement[Any]:
        if isinstance(value, bool):
            return self.boolean
        return self.string if isinstance(value, str) else self.number


def _json_value(
    column: InstrumentedAttribute[Any], path: tuple[str, ...], dialect: str
) -> _JsonValue:
    if dialect == "postgresql":
        return _postgresql_json_value(column, path)
    return _sqlite_json_value(column, path)


def _sqlite_json_value(column: InstrumentedAttribute[Any], path: tuple[str, ...]) -> _JsonValue:
    # Every key quoted, so a key may hold dots or slashes: $."final"."train/acc".
    # (SQLite's paths have no escape for a quote inside a key: the parser refuses one.)
    json_path = "$" + "".join(f'."{key}"' for key in path)
    kind = func.json_type(column, json_path)
    extracted = func.json_extract(column, json_path)
    return _JsonValue(
        number=case((kind.in_(("integer", "real")), type_coerce(extracted, Float))),
        string=case((kind == "text", type_coerce(extracted, String))),
        boolean=case((kind == "true", 1), (kind == "false", 0)),
        is_null=func.coalesce(kind, "null") == "null",
        rank=case(
            (kind.in_(("integer", "real")), 0),
            (kind == "text", 1),
            (kind.in_(("true", "false")), 2),
            else_=3,
        ),
    )


def _postgresql_json_value(column: InstrumentedAttribute[Any], path: tuple[str, ...]) -> _JsonValue:
    document = type_coerce(column, JSONB)
    keys = literal(list(path), ARRAY(Text))
    node = document.op("#>", return_type=JSONB)(keys)
    text = document.op("#>>", return_type=Text)(keys)
    kind = func.jsonb_typeof(node)
    return _JsonValue(
        number=case((kind == "number", cast(text, Float))),
        # "C": strings compare by code point, as on SQLite, whatever the database's locale.
        string=case((kind == "string", text)).collate("C"),
        boolean=case((kind == "boolean", case((text == "true", 1), else_=0))),
        is_null=func.coalesce(kind, "null") == "null",
        rank=case((kind == "number", 0), (kind == "string", 1), (kind == "boolean", 2), else_=3),
    )


def _compare(left: ColumnElement[Any], op: str, right: Any) -> ColumnElement[bool]:
    match op:
        case "=":
            return left == right
        case "!=":
            return left != right
        case "<":
            return left < right
        case "<=":
            return left <= right
        case ">":
            return left > right
        case ">=":
            return left >= right
    raise AssertionError(f"unknown operator {op}")


def _scalar_column(root: str, dialect: str) -> ColumnElement[Any]:
    column: ColumnElement[Any] = getattr(Run, root)
    if dialect == "postgresql" and root in ("kind", "name"):
        return column.collate("C")
    return column


def _has_row(root: str, condition: Callable[[Any], ColumnElement[bool]] | None) -> Any:
    """EXISTS a tag (or sweep membership) of the run, matching `condition` if given."""
    table, run_id, value = (
        (RunTag, RunTag.run_id, RunTag.tag)
        if root == "tag"
        else (SweepRun, SweepRun.run_id, SweepRun.sweep_id)
    )
    query = select(table).where(run_id == Run.id)
    if condition is not None:
        query = query.where(condition(value))
    return exists(query)


def compile_filter(expr: Expr, dialect: str) -> ColumnElement[bool]:
    """`expr` as a WHERE clause over `runs`, for the dialect named (`sqlite`, `postgresql`)."""
    match expr:
        case And(operands):
            return and_(*(compile_filter(e, dialect) for e in operands))
        case Or(operands):
            return or_(*(compile_filter(e, dialect) for e in operands))
        case Not(operand):
            return not_(compile_filter(operand, dialect))
        case IsNull(field, negated):
            condition = _is_null(field, dialect)
            return not_(condition) if negated else condition
        case Comparison(field, op, value):
            return _compile_comparison(field, op, value, dialect)
        case Membership(field, values):
            return _compile_membership(field, values, dialect)
    raise AssertionError(f"not a filter expression: {expr!r}")


def _is_null(field: Field, dialect: str) -> ColumnElement[bool]:
    if field.root in JSON_ROOTS:
        return _json_value(getattr(Run, field.root), field.path, dialect).is_null
    if _COLUMNS[field.root].membership:
        return not_(_has_row(field.root, None))
    column: ColumnElement[Any] = getattr(Run, field.root)
    return column.is_(None)


def _compile_comparison(field: Field, op: str, value: Scalar, dialect: str) -> ColumnElement[bool]:
    if field.root in JSON_ROOTS:
        json_value = _json_value(getattr(Run, field.root), field.path, dialect)
        return _compare(json_value.of_type(value), op, _json_bound(value))
    column = _COLUMNS[field.root]
    converted = column.convert(str(value))
    if column.membership:
        has = _has_row(field.root, lambda stored: stored == converted)
        return has if op == "=" else not_(has)
    return _compare(_scalar_column(field.root, dialect), op, converted)


def _json_bound(value: Scalar) -> Any:
    """A literal as its JSON value's SQL expression holds it: a boolean as 1 or 0, a number
    as a float. (PostgreSQL types an IN list by its first parameter: with `in (0, -1.5)`
    bound as they come, -1.5 was read as an integer, -2.)"""
    if isinstance(value, bool):
        return 1 if value else 0
    return float(value) if isinstance(value, int | float) else value


def _compile_membership(
    field: Field, values: tuple[Scalar, ...], dialect: str
) -> ColumnElement[bool]:
    if field.root in JSON_ROOTS:
        json_value = _json_value(getattr(Run, field.root), field.path, dialect)
        return json_value.of_type(values[0]).in_([_json_bound(v) for v in values])
    column = _COLUMNS[field.root]
    converted = [column.convert(str(v)) for v in values]
    if column.membership:
        return _has_row(field.root, lambda stored: stored.in_(converted))
    return _scalar_column(field.root, dialect).in_(converted)


def compile_sort(sort: Sort, dialect: str) -> list[ColumnElement[Any]]:
    """ORDER BY terms for `sort`: missing values last in either direction, then ties
    broken by created_at and id, newest first."""
    field = sort.field

    def directed(term: ColumnElement[Any]) -> ColumnElement[Any]:
        return term.desc() if sort.descending else term.asc()

    terms: list[ColumnElement[Any]]
    if field.root in JSON_ROOTS:
        value = _json_value(getattr(Run, field.root), field.path, dialect)
        # One kind of value per rank, so only one of the three is non-null in a row.
        terms = [
            value.rank.asc(),
            directed(value.number),
            directed(value.string),
            directed(value.boolean),
        ]
    elif field.root == "name":
        column = _scalar_column("name", dialect)
        terms = [case((Run.name.is_(None), 1), else_=0).asc(), directed(column)]
    else:
        terms = [directed(_scalar_column(field.root, dialect))]
    return [*terms, Run.created_at.desc(), Run.id.desc()]


__all__ = [
    "And",
    "Comparison",
    "Expr",
    "Field",
    "IsNull",
    "Membership",
    "Not",
    "Or",
    "QueryError",
    "Sort",
    "compile_filter",
    "compile_sort",
    "parse_filter",
    "parse_sort",
]
