"""A listing of experiments as a CSV or Parquet file, streamed page by page.

The file has a column for each run field (id, name, kind, status, tags, sweep, times) and
one for each scalar in the runs' specs and results, flattened to dotted paths
(`spec.model.n_embd`, `result.final.facts`). A first pass over the matching runs finds
those columns and their types; a second writes the rows, a page at a time, so neither
pass holds more than one page of runs.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from api.auth import Principal
from api.runs.service import Listing, list_runs
from store.models import Run, RunType

PAGE_SIZE = 500
RUN_COLUMNS = ("id", "name", "kind", "status", "tags", "sweep_id", "created_at", "finished_at")
Page = list[dict[str, Any]]


def export_rows(
    sessions: sessionmaker[Session], listing: Listing, principal: Principal
) -> Iterator[Page]:
    """Every run `principal` sees that the listing matches (its limit and offset aside),
    as flat rows, a page at a time, in the listing's order."""
    offset = 0
    while True:
        page = dataclasses.replace(listing, limit=PAGE_SIZE, offset=offset)
        with sessions() as session:
            runs = list_runs(session, RunType.experiment, page, principal).items
            rows = [flat_run(run) for run in runs]
        if rows:
            yield rows
        if len(rows) < PAGE_SIZE:
            return
        offset += PAGE_SIZE


def flat_run(run: Run) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": str(run.id),
        "name": run.name,
        "kind": run.kind,
        "status": run.status.value,
        "tags": ",".join(run.tag_names),
        "sweep_id": str(run.sweep_id) if run.sweep_id else None,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }
    row.update(_scalars(run.spec, "spec"))
    row.update(_scalars(run.result or {}, "result"))
    return row


def _scalars(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """Every number, string and boolean below `value`, by dotted path (lists left out)."""
    if isinstance(value, Mapping):
        for key, child in value.items():
            yield from _scalars(child, f"{prefix}.{key}")
    elif isinstance(value, bool | int | float | str):
        yield prefix, value


@dataclasses.dataclass
class Columns:
    """The file's columns in order, with the type each one's values share: "number",
    "bool" or "string" (mixed or absent values are strings)."""

    types: dict[str, str] = dataclasses.field(default_factory=dict)

    def see(self, row: Mapping[str, Any]) -> None:
        for name, value in row.items():
            if value is None:
                continue
            kind = _kind(value)
            seen = self.types.setdefault(name, kind)
            if seen != kind:
                self.types[name] = "string"

    def names(self) -> list[str]:
        found = [name for name in self.types if name not in RUN_COLUMNS]
        return [*RUN_COLUMNS, *sorted(found)]


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, int | float) else "string"


def columns_of(pages: Callable[[], Iterator[Page]]) -> Columns:
    columns = Columns()
    for page in pages():
        for row in page:
            columns.see(row)
    return columns


def csv_stream(pages: Callable[[], Iterator[Page]]) -> Iterator[str]:
    """The header, then a chunk of CSV per page."""
    names = columns_of(pages).names()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    yield out.getvalue()
    for page in pages():
        out.seek(0)
        out.truncate()
        writer.writerows([_text(row.get(name)) for name in names] for row in page)
        yield out.getvalue()


def _text(value: Any) -> Any:
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, bool) else value


def parquet_stream(pages: Callable[[], Iterator[Page]]) -> Iterator[bytes]:
    """A Parquet file, a row group per page, each yielded as soon as it is written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = columns_of(pages)
    arrow_types = {"number": pa.float64(), "bool": pa.bool_(), "string": pa.string()}
    schema = pa.schema(
        [(name, arrow_types[columns.types.get(name, "string")]) for name in columns.names()]
    )
    sink = _Chunks()
    with pq.ParquetWriter(sink, schema) as writer:
        for page in pages():
            data = {
                name: [_typed(row.get(name), columns.types.get(name, "string")) for row in page]
                for name in schema.names
            }
            writer.write_table(pa.Table.from_pydict(data, schema=schema))
            yield sink.take()
    yield sink.take()  # the footer


class _Chunks(io.RawIOBase):
    """A write-only file that hands over what was written since the last `take`, while
    `tell` keeps counting from the start (Parquet's footer records offsets)."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []
        self._written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._written += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._written

    def take(self) -> bytes:
        taken, self._parts = b"".join(self._parts), []
        return taken


def _typed(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "number":
        return float(value)
    if kind == "string" and not isinstance(value, str):
        return json.dumps(value)
    return value
