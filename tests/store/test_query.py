"""The listing filter language (store/query.py): how it parses, what it refuses and where,
and that its SQL means the same on SQLite and PostgreSQL as a plain reading of the filter
with SQL's null semantics."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from store import repository
from store.models import Run, RunStatus, RunTag, RunType, Sweep, SweepRun
from store.query import (
    And,
    Comparison,
    Expr,
    Field,
    IsNull,
    Membership,
    Not,
    Or,
    QueryError,
    Sort,
    parse_filter,
    parse_sort,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)

# --- Parsing -------------------------------------------------------------------------


def shape(expr: Expr) -> Any:
    """The AST without positions, as nested tuples: easy to write down in a test."""
    match expr:
        case And(operands):
            return ("and", *map(shape, operands))
        case Or(operands):
            return ("or", *map(shape, operands))
        case Not(operand):
            return ("not", shape(operand))
        case IsNull(f, negated):
            return (str(f), "is not null" if negated else "is null")
        case Comparison(f, op, value):
            return (str(f), op, value)
        case Membership(f, values):
            return (str(f), "in", values)
    raise AssertionError(expr)


def test_not_binds_tighter_than_and_and_and_tighter_than_or() -> None:
    assert shape(parse_filter('kind = "a" or kind = "b" and not name = "c"')) == (
        "or",
        ("kind", "=", "a"),
        ("and", ("kind", "=", "b"), ("not", ("name", "=", "c"))),
    )
    assert shape(parse_filter('(kind = "a" or kind = "b") and not (name = "c" or id is null)')) == (
        "and",
        ("or", ("kind", "=", "a"), ("kind", "=", "b")),
        ("not", ("or", ("name", "=", "c"), ("id", "is null"))),
    )


def test_every_operator_and_literal_parses() -> None:
    text = (
        "spec.a = 1 and spec.a != -2 and spec.a < 1.5 and spec.a <= 3e-4 and spec.a > 2E+3"
        ' and spec.a >= 0 and spec.b = true and spec.b != false and spec.c in ("x", "y")'
        " and spec.d not in (1, 2.5) and spec.e is null and spec.e is not null"
    )
    assert shape(parse_filter(text)) == (
        "and",
        ("spec.a", "=", 1),
        ("spec.a", "!=", -2),
        ("spec.a", "<", 1.5),
        ("spec.a", "<=", 3e-4),
        ("spec.a", ">", 2000.0),
        ("spec.a", ">=", 0),
        ("spec.b", "=", True),
        ("spec.b", "!=", False),
        ("spec.c", "in", ("x", "y")),
        ("not", ("spec.d", "in", (1, 2.5))),
        ("spec.e", "is null"),
        ("spec.e", "is not null"),
    )


def test_strings_take_json_escapes_and_keys_may_be_quoted() -> None:
    parsed = parse_filter(r'result.final."train/acc" = "a\"b\\c\u00e9\n\/\ud83d\ude00"')
    assert shape(parsed) == ("result.final.train/acc", "=", 'a"b\\cé\n/😀')
    assert parsed.field.path == ("final", "train/acc")  # type: ignore[union-attr]


def test_keywords_are_case_insensitive_and_fields_may_use_them_as_keys() -> None:
    assert shape(parse_filter("spec.and.in = 1 AND NOT spec.or IS NULL")) == (
        "and",
        ("spec.and.in", "=", 1),
        ("not", ("spec.or", "is null")),
    )


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        ("", 0, "the filter is empty"),
        ("spec.train.lr >= ", 17, "expected a value after '>='"),
        ('status = "succeeded" and', 24, "expected a field, not the end of the filter"),
        ("(spec.a = 1", 11, "expected ')' to close the '(' at position 0"),
        ("spec.a = 1)", 10, "expected 'and', 'or' or the end of the filter, not ')'"),
        ("spec.a = 1 spec.b = 2", 11, "expected 'and', 'or' or the end of the filter"),
        ("colour = 1", 0, "unknown field 'colour'"),
        ("spec.a == 1", 8, "expected a value after '=', not '='"),
        ("spec.a ~ 1", 7, "unexpected character '~'"),
        ('spec.a = "open', 9, "unterminated string"),
        (r'spec.a = "\q"', 10, "unknown escape '\\q'"),
        (r'spec.a = "x\u0000"', 11, "a string cannot hold \\u0000"),
        (r'spec.a = "\ud83d"', 10, "a string cannot hold \\ud83d"),
        ('spec.a = "\x00"', 10, "a string cannot hold the NUL character"),
        ("spec.a = 14abc", 9, "malformed number"),
        ("spec.a = 1.2.3", 9, "malformed number"),
        ("spec.a in 1", 10, "expected '(' after 'in'"),
        ("spec.a in (1 2)", 13, "expected ',' or ')'"),
        ("spec.a in ()", 11, "expected a value after '('"),
        ("spec.a is 1", 10, "expected 'null' after 'is'"),
        ("spec.a not = 1", 11, "expected 'in' after 'not'"),
        ("spec. = 1", 6, "expected a key after '.'"),
        ("spec = 1", 0, "'spec' needs a path"),
        ('status.code = "x"', 0, "'status' has no fields"),
        ("spec.a", 6, "expected an operator"),
        ("not " * 70 + "spec.a = 1", 256, "nests deeper than 64"),
    ],
)
def test_a_malformed_filter_names_the_position_at_fault(
    text: str, position: int, reason: str
) -> None:
    with pytest.raises(QueryError) as raised:
        parse_filter(text)
    assert raised.value.position == position, raised.value
    assert reason in str(raised.value)
    assert str(raised.value).startswith(f"at position {position}: ")


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        ("status > 3", 9, "status compares with a string, not a number"),
        ('status < "queued"', 7, "status takes =, != and in, not '<'"),
        ('status = "done"', 9, "status is one of queued, running"),
        ("created_at = 5", 13, "created_at compares with a string, not a number"),
        ('created_at > "yesterday"', 13, "not an ISO 8601 timestamp"),
        ('id = "abc"', 5, "'abc' is not a UUID"),
        ('sweep_id in ("abc")', 13, "not a UUID"),
        ('tag > "x"', 4, "tag takes =, != and in"),
        ("name = true", 7, "name compares with a string, not a boolean"),
        ("spec.flag < true", 10, "true and false compare with = and != only"),
        ('spec.a in (1, "x")', 7, "must all be numbers, all strings or all booleans"),
        ("spec.a = null", 9, "use 'spec.a is null'"),
        ("spec.a != null", 10, "use 'spec.a is not null'"),
        ("spec.a in (1, null)", 14, "a comparison with null is never true"),
        ('result."a\\"b" = 1', 7, "a key cannot hold a double quote"),
        ("spec.a = 1e999", 9, "out of range"),
    ],
)
def test_a_type_mismatch_is_an_error_at_the_value_or_operator(
    text: str, position: int, reason: str
) -> None:
    with pytest.raises(QueryError) as raised:
        parse_filter(text)
    assert (raised.value.position, reason in raised.value.reason) == (position, True), raised.value


def test_sort_takes_a_field_and_an_optional_minus() -> None:
    assert parse_sort("-spec.model.n_embd") == Sort(
        Field("spec", ("model", "n_embd"), 1), descending=True
    )
    assert parse_sort("created_at") == Sort(Field("created_at", (), 0), descending=False)
    for text, position in [("tag", 0), ("-sweep_id", 1), ("-", 1), ("-spec", 1), ("name x", 5)]:
        with pytest.raises(QueryError) as raised:
            parse_sort(text)
        assert raised.value.position == position, (text, raised.value)


def test_the_caret_points_at_the_character() -> None:
    error = QueryError("expected a value after '>='", 17)
    assert error.caret("spec.train.lr >= ") == "spec.train.lr >= \n" + " " * 17 + "^"


# --- On the databases ----------------------------------------------------------------


@dataclass
class Row:
    """A run to insert: what the filters read, and nothing else."""

    spec: dict[str, Any]
    result: dict[str, Any] | None = None
    status: RunStatus = RunStatus.succeeded
    tags: tuple[str, ...] = ()
    name: str | None = None
    kind: str = "capacity_tradeoff"
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    created_at: datetime = T0


def insert(session: Session, rows: list[Row]) -> None:
    session.add_all(
        Run(
            id=row.id,
            run_type=RunType.experiment,
            kind=row.kind,
            spec=row.spec,
            spec_hash="0" * 64,
            name=row.name,
            status=row.status,
            result=row.result,
            created_at=row.created_at,
            tags=[RunTag(tag=t) for t in row.tags],
        )
        for row in rows
    )


def names(sessions: sessionmaker[Session], where: str | None, sort: str | None = None) -> list:
    with sessions() as session:
        page = repository.list_runs(
            session,
            run_type=RunType.experiment,
            where=parse_filter(where) if where else None,
            sort=parse_sort(sort) if sort else None,
            limit=200,
        )
        return [run.name for run in page.items]


@dataclass(frozen=True)
class Population:
    sessions: sessionmaker[Session]
    sweep_id: uuid.UUID  # of r1 and r3
    ids: dict[str, uuid.UUID]


@pytest.fixture
def population(sessions: sessionmaker[Session]) -> Population:
    """Five runs named r0…r4, newest last, with values missing, null and of odd types."""
    rows = [
        Row(
            name="r0",
            spec={"model": {"n_embd": 14}, "train": {"lr": 0.01}, "task": "facts"},
            result={"final": {"facts_acc": 0.95, "train/acc": 1.0}, "ok": True},
            tags=("a", "b"),
        ),
        Row(
            name="r1",
            spec={"model": {"n_embd": 28}, "train": {"lr": 3e-4}, "task": "arith"},
            result={"final": {"facts_acc": 0.5}, "ok": False},
            status=RunStatus.failed,
            tags=("a",),
        ),
        Row(
            name="r2",
            spec={"model": {"n_embd": 56.0}, "train": {"lr": None}, "task": "Facts"},
            result=None,
            status=RunStatus.queued,
        ),
        Row(
            name="r3",
            spec={"model": {"n_embd": "wide"}, "train": {}, "task": 7},
            result={"final": {"facts_acc": 0.9}},
        ),
        Row(name="r4", spec={"model": {}, "task": "é"}, result={"final": {}}, kind="other"),
    ]
    for i, row in enumerate(rows):
        row.created_at = T0 + timedelta(days=i)
    with sessions.begin() as session:
        insert(session, rows)
        sweep = Sweep(kind="capacity_tradeoff", request={}, n_runs=2, tags=[])
        session.add(sweep)
        session.flush()
        session.add_all(
            SweepRun(sweep_id=sweep.id, position=p, run_id=rows[i].id, cell={})
            for p, i in enumerate((1, 3))
        )
    return Population(sessions, sweep.id, {str(row.name): row.id for row in rows})


CASES = {
    # Numbers compare numerically, ints and floats alike; a string at the path is null.
    "spec.model.n_embd = 14": ["r0"],
    "spec.model.n_embd != 14": ["r2", "r1"],
    "spec.model.n_embd < 28": ["r0"],
    "spec.model.n_embd <= 28": ["r1", "r0"],
    "spec.model.n_embd > 14": ["r2", "r1"],
    "spec.model.n_embd >= 56": ["r2"],
    "spec.model.n_embd in (14, 56)": ["r2", "r0"],
    "spec.model.n_embd not in (14, 56)": ["r1"],
    # An integer first in the list must not make the rest integers (PostgreSQL read
    # 13.6 as 14 until numbers were bound as floats; the property test below found it).
    "spec.model.n_embd in (0, 13.6)": [],
    "spec.model.n_embd in (0, 28.0)": ["r1"],
    "spec.train.lr < 1e-3": ["r1"],
    # Strings compare as strings, by code point on both databases.
    'spec.task = "facts"': ["r0"],
    'spec.task > "F"': ["r4", "r2", "r1", "r0"],
    'spec.task < "a"': ["r2"],
    'spec.model.n_embd = "wide"': ["r3"],
    # Booleans.
    "result.ok = true": ["r0"],
    "result.ok != true": ["r1"],
    # Null semantics: a missing value, a JSON null and a value of another type are null.
    "not (spec.train.lr = 0.01)": ["r1"],
    "spec.train.lr is null": ["r4", "r3", "r2"],
    "spec.train.lr is not null": ["r1", "r0"],
    "result.final.facts_acc is null": ["r4", "r2"],
    "not result.final.facts_acc > 0.6": ["r1"],
    'result.final."train/acc" = 1': ["r0"],
    # Columns.
    'status = "succeeded"': ["r4", "r3", "r0"],
    'status in ("failed", "queued")': ["r2", "r1"],
    'status != "succeeded"': ["r2", "r1"],
    'kind = "other"': ["r4"],
    'name >= "r3"': ["r4", "r3"],
    'created_at >= "2026-01-03"': ["r4", "r3", "r2"],
    'created_at < "2026-01-02T00:00:00+00:00"': ["r0"],
    'created_at > "2026-01-01T23:00:00-02:00"': ["r4", "r3", "r2"],
    # Memberships.
    'tag = "a"': ["r1", "r0"],
    'tag = "b" or tag = "c"': ["r0"],
    'tag != "b"': ["r4", "r3", "r2", "r1"],
    'tag in ("b", "z")': ["r0"],
    "tag is null": ["r4", "r3", "r2"],
    # Boolean structure.
    'spec.model.n_embd in (14, 28) and result.final.facts_acc >= 0.9 and status = "succeeded"': [
        "r0"
    ],
    'status = "failed" or spec.model.n_embd = "wide" and not tag = "a"': ["r3", "r1"],
}


def test_every_operator_on_both_databases(population: Population) -> None:
    for where, expected in CASES.items():
        assert names(population.sessions, where) == expected, where


def test_sweep_id_and_id_filters(population: Population) -> None:
    sessions, sweep_id, r2 = population.sessions, population.sweep_id, population.ids["r2"]
    assert names(sessions, f'sweep_id = "{sweep_id}"') == ["r3", "r1"]
    assert names(sessions, f'sweep_id != "{sweep_id}"') == ["r4", "r2", "r0"]
    assert names(sessions, "sweep_id is not null") == ["r3", "r1"]
    assert names(sessions, f'id = "{r2}" or id in ("{uuid.uuid4()}")') == ["r2"]


def test_sort_puts_missing_values_last_in_either_direction(population: Population) -> None:
    sessions = population.sessions
    # Numbers, then strings, then the rest (missing last); ties newest first.
    assert names(sessions, None, "spec.model.n_embd") == ["r0", "r1", "r2", "r3", "r4"]
    assert names(sessions, None, "-spec.model.n_embd") == ["r2", "r1", "r0", "r3", "r4"]
    assert names(sessions, None, "result.final.facts_acc") == ["r1", "r3", "r0", "r4", "r2"]
    assert names(sessions, None, "-result.final.facts_acc") == ["r0", "r3", "r1", "r4", "r2"]
    assert names(sessions, None, "-status") == ["r4", "r3", "r0", "r2", "r1"]
    assert names(sessions, 'status = "succeeded"', "-created_at") == ["r4", "r3", "r0"]
    assert names(sessions, None, "name") == ["r0", "r1", "r2", "r3", "r4"]


# --- The SQL against a plain reading of the AST --------------------------------------

_MISSING = object()


def lookup(row: Row, f: Field) -> Any:
    """The row's value of `f`; _MISSING where a JSON path has none."""
    if f.root in ("spec", "result"):
        value: Any = row.spec if f.root == "spec" else row.result
        for key in f.path:
            if not isinstance(value, dict) or key not in value:
                return _MISSING
            value = value[key]
        return value
    return getattr(row, f.root)


def same_type(value: Any, literal: Any) -> bool:
    if isinstance(literal, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(literal, bool)
    if isinstance(literal, str):
        return isinstance(value, str)
    return isinstance(value, int | float)


def evaluate(expr: Expr, row: Row) -> bool | None:
    """The filter on one row with SQL's three-valued logic: None is unknown."""
    match expr:
        case And(operands):
            results = [evaluate(e, row) for e in operands]
            return False if False in results else (None if None in results else True)
        case Or(operands):
            results = [evaluate(e, row) for e in operands]
            return True if True in results else (None if None in results else False)
        case Not(operand):
            result = evaluate(operand, row)
            return None if result is None else not result
        case IsNull(f, negated):
            if f.root == "tag":
                return bool(row.tags) if negated else not row.tags
            value = lookup(row, f)
            return (value not in (None, _MISSING)) if negated else value in (None, _MISSING)
        case Comparison(f, op, literal):
            if f.root == "tag":
                return (literal in row.tags) == (op == "=")
            value = lookup(row, f)
            if value is None or value is _MISSING or not same_type(value, literal):
                return None
            return {
                "=": value == literal,
                "!=": value != literal,
                "<": value < literal,
                "<=": value <= literal,
                ">": value > literal,
                ">=": value >= literal,
            }[op]
        case Membership(f, literals):
            if f.root == "tag":
                return any(t in literals for t in row.tags)
            value = lookup(row, f)
            if value is None or value is _MISSING or not same_type(value, literals[0]):
                return None
            return value in literals
    raise AssertionError(expr)


def sorted_by(rows: list[Row], sort: Sort) -> list[Row]:
    """Numbers, then strings, then booleans, then the rest, each in the sort's direction;
    ties newest first."""
    newest_first = sorted(rows, key=lambda r: r.created_at, reverse=True)
    groups: dict[int, list[Row]] = {0: [], 1: [], 2: [], 3: []}
    for row in newest_first:
        value = lookup(row, sort.field)
        rank = (
            2
            if isinstance(value, bool)
            else 0
            if isinstance(value, int | float)
            else 1
            if isinstance(value, str)
            else 3
        )
        groups[rank].append(row)
    ordered: list[Row] = []
    for rank, members in groups.items():
        if rank < 3:
            members = sorted(members, key=lambda r: lookup(r, sort.field), reverse=sort.descending)
        ordered += members
    return ordered


JSON_VALUES = st.one_of(
    st.just(_MISSING),
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.5, -1.5, 2.0, 1e-3]),
    st.sampled_from(["a", "B", "é", "a b", "", '"q"']),
)
NAMES = st.one_of(st.none(), st.sampled_from(["a", "B", "é", "zz"]))
FIELDS = ["spec.x", "spec.y.z", "result.w"]


def _document(values: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for dotted, value in values.items():
        if value is _MISSING:
            continue
        *parents, key = dotted.split(".")
        node = document
        for parent in parents:
            node = node.setdefault(parent, {})
        node[key] = value
    return document


@st.composite
def rows(draw: st.DrawFn) -> Row:
    spec = _document({"x": draw(JSON_VALUES), "y.z": draw(JSON_VALUES)})
    result = draw(st.one_of(st.none(), st.builds(lambda w: _document({"w": w}), JSON_VALUES)))
    return Row(
        spec=spec,
        result=result,
        name=draw(NAMES),
        status=draw(st.sampled_from([RunStatus.succeeded, RunStatus.failed])),
        tags=tuple(draw(st.sets(st.sampled_from(["t1", "t2"])))),
    )


LITERALS = st.one_of(
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.5, -1.5, 2.0, 1e-3, 1.0]),
    st.sampled_from(["a", "B", "é", "a b", "", '"q"', "zz"]),
)


def literal_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, str) else repr(value)


@st.composite
def comparisons(draw: st.DrawFn) -> str:
    target = draw(st.sampled_from([*FIELDS, "name", "status", "tag"]))
    if target == "tag":
        literal = draw(st.sampled_from(["t1", "t2", "t3"]))
        return f"tag {draw(st.sampled_from(['=', '!=']))} {json.dumps(literal)}"
    if target == "status":
        literal = draw(st.sampled_from(["succeeded", "failed"]))
        return f"status {draw(st.sampled_from(['=', '!=']))} {json.dumps(literal)}"
    form = draw(st.sampled_from(["op", "in", "null"]))
    if form == "null":
        return f"{target} is {draw(st.sampled_from(['', 'not ']))}null"
    literals = st.sampled_from(["a", "B", "é", "zz"]) if target == "name" else LITERALS
    if form == "in":
        first = draw(literals)
        same = {bool: st.booleans(), str: st.sampled_from(["a", "é", "zz", ""])}.get(
            type(first), st.sampled_from([1, 2, -1.5, 0.5])
        )
        values = [first, *draw(st.lists(same, max_size=2))]
        return f"{target} in ({', '.join(map(literal_text, values))})"
    literal = draw(literals)
    operators = ["=", "!="] if isinstance(literal, bool) else ["=", "!=", "<", "<=", ">", ">="]
    return f"{target} {draw(st.sampled_from(operators))} {literal_text(literal)}"


FILTERS = st.recursive(
    comparisons(),
    lambda inner: st.one_of(
        st.builds(lambda e: f"not ({e})", inner),
        st.builds(lambda a, b: f"({a}) and ({b})", inner, inner),
        st.builds(lambda a, b: f"({a}) or ({b})", inner, inner),
        st.builds(lambda a, b, c: f"{a} or {b} and not {c}", inner, inner, inner),
    ),
    max_leaves=6,
)
SORTS = st.builds(lambda minus, f: minus + f, st.sampled_from(["", "-"]), st.sampled_from(FIELDS))


def test_the_sql_agrees_with_a_plain_reading_of_the_filter(
    sessions: sessionmaker[Session],
) -> None:
    @settings(
        max_examples=50,
        deadline=None,
        database=None,
        # The same 50 examples on every run: CI is not where a new counterexample should
        # first appear at random (one did: the fixed case in CASES above). Run with
        # derandomize off locally to explore.
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.lists(rows(), min_size=1, max_size=7), FILTERS, SORTS)
    def agree(population: list[Row], where: str, sort: str) -> None:
        for i, row in enumerate(population):
            row.created_at = T0 + timedelta(hours=i)
        with sessions.begin() as session:
            session.execute(delete(Run))
            insert(session, population)
        expr, order = parse_filter(where), parse_sort(sort)
        with sessions() as session:
            found = repository.list_runs(
                session, run_type=RunType.experiment, where=expr, sort=order, limit=200
            )
            got = [run.id for run in found.items]
        matching = [row for row in population if evaluate(expr, row) is True]
        assert got == [row.id for row in sorted_by(matching, order)], (where, sort)

    agree()
