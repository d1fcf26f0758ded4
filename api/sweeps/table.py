"""A sweep's table (`core.tables`) from its children's rows, as JSON, CSV or Parquet."""

from __future__ import annotations

import csv
import io
import json
import uuid
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.claims import Claim, Verdict, check_claims
from core.tables import CellRow, Child, flat_table
from store.models import Run, RunStatus, RunType, Sweep, SweepRun

CLAIMS: TypeAdapter[list[Claim]] = TypeAdapter(list[Claim])


def verdicts(sweep: Sweep, children: list[Child]) -> list[Verdict]:
    """The sweep's claims, each held against its children."""
    claims = CLAIMS.validate_python(sweep.request.get("claims", []))
    return check_claims(claims, children)


def table_children(session: Session, sweep_id: uuid.UUID) -> list[Child]:
    """What the table reads of each child, in cell order (one query for the children and
    one for their succeeded probes)."""
    found = session.execute(
        select(SweepRun.cell, Run.id, Run.status, Run.result)
        .join(Run, Run.id == SweepRun.run_id)
        .where(SweepRun.sweep_id == sweep_id)
        .order_by(SweepRun.position)
    ).all()
    probes = _probe_results(session, sweep_id)
    return [
        Child(row.cell, RunStatus(row.status).value, row.result, probes.get(row.id, {}))
        for row in found
    ]


def _probe_results(
    session: Session, sweep_id: uuid.UUID
) -> dict[uuid.UUID, dict[str, dict[str, Any]]]:
    """Each child's succeeded probes' results by probe kind (the newest of a kind). The
    children are named by a subquery: a list of 100,000 ids passes PostgreSQL's limit of
    65,535 parameters."""
    children = select(SweepRun.run_id).where(SweepRun.sweep_id == sweep_id)
    found = session.execute(
        select(Run.target_id, Run.kind, Run.result)
        .where(
            Run.run_type == RunType.probe,
            Run.status == RunStatus.succeeded,
            Run.target_id.in_(children),
        )
        .order_by(Run.created_at)
    ).all()
    results: dict[uuid.UUID, dict[str, dict[str, Any]]] = {}
    for target_id, kind, result in found:
        if target_id is not None and result is not None:
            results.setdefault(target_id, {})[kind] = result  # later rows are newer
    return results


def as_csv(rows: list[CellRow]) -> str:
    """The flat table as CSV: one header line, an empty field where a cell has no value."""
    columns, table = flat_table(rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(["" if value is None else _plain(value) for value in line] for line in table)
    return out.getvalue()


def as_parquet(rows: list[CellRow]) -> bytes:
    """The flat table as a Parquet file (one row group)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns, table = flat_table(rows)
    arrays = {name: [_plain(line[i]) for line in table] for i, name in enumerate(columns)}
    out = io.BytesIO()
    pq.write_table(pa.table(arrays), out)
    return out.getvalue()


def _plain(value: Any) -> Any:
    """A scalar as is; an object or list (an axis over a sub-spec) as its JSON text."""
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value
