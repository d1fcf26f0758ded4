"""Run use cases that experiments and probes share: find one of a type, cancel it, list them.

Experiments and probes live in one table, but the API keeps them apart: a lookup names the
run type it serves, so `/v1/experiments/{id}` is a 404 for a probe's id and
`/v1/probes/{id}` is a 404 for an experiment's.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query
from sqlalchemy.orm import Session

from api.auth import Principal
from api.errors import NotFoundError, ValidationFailedError
from api.runs import spec_fields
from store import query, repository, runs
from store.audit import AuditAction
from store.models import Role, Run, RunStatus, RunType


def get_run_or_404(
    session: Session, run_id: uuid.UUID, run_type: RunType, principal: Principal
) -> Run:
    """The run with this id if it is of `run_type` and in a project `principal` sees; a
    404 otherwise, as for an unknown id."""
    run = repository.get_run(session, run_id)
    if run is None or run.run_type is not run_type or not principal.can_see(run.project_id):
        raise NotFoundError(f"{run_type.value} {run_id} not found")
    return run


def cancel_run(session: Session, run_id: uuid.UUID, run_type: RunType, principal: Principal) -> Run:
    """Cancel a queued run now, or flag a running one to stop at its next check (409 if
    ended). A member cancels its own runs, a maintainer anyone's."""
    run = get_run_or_404(session, run_id, run_type, principal)
    own = run.submitted_by == principal.user_id
    needed = Role.member if own else Role.maintainer
    principal.require(run.project_id, needed, "cancel " + ("your run" if own else "another's run"))
    runs.request_cancel(session, run)
    action = {
        RunType.experiment: AuditAction.experiment_cancelled,
        RunType.probe: AuditAction.probe_cancelled,
    }[run_type]
    audit_run(session, principal, action, run, {"own": own, "status": run.status.value})
    session.commit()
    session.refresh(run)
    return run


def audit_run(
    session: Session,
    principal: Principal,
    action: AuditAction,
    run: Run,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record that `principal` did `action` to `run` (with the caller's commit)."""
    detail = {"kind": run.kind, **(detail or {})}
    principal.audit(session, action, project_id=run.project_id, target=str(run.id), detail=detail)


class FilterError(ValidationFailedError):
    """A `where=` or `sort=` that does not parse or compares a field with the wrong type."""


@dataclass(frozen=True)
class Listing:
    """The filters and the page that every listing of runs takes from its query string."""

    kind: str | None
    status: RunStatus | None
    tag: str | None
    limit: int
    offset: int
    sweep_id: uuid.UUID | None = None
    where: query.Expr | None = None
    sort: query.Sort | None = None
    project_id: uuid.UUID | None = None

    def kept(
        self, run_type: RunType, principal: Principal, target_id: uuid.UUID | None = None
    ) -> repository.RunFilter:
        """The runs of `run_type` this listing keeps among those `principal` sees."""
        return repository.RunFilter(
            run_type=run_type,
            kind=self.kind,
            status=self.status,
            tag=self.tag,
            target_id=target_id,
            sweep_id=self.sweep_id,
            where=self.where,
            projects=self.projects(principal),
        )

    def projects(self, principal: Principal) -> frozenset[uuid.UUID] | None:
        """The projects whose runs the listing may show: those `principal` sees, narrowed
        to `project_id` when it names one (a project it cannot see leaves none)."""
        visible = principal.visible_projects()
        if self.project_id is None:
            return visible
        if visible is not None and self.project_id not in visible:
            return frozenset()
        return frozenset({self.project_id})


Parsed = TypeVar("Parsed")


def _parsed(parse: Callable[[str], Parsed], text: str | None, parameter: str) -> Parsed | None:
    """`text` parsed, or a 422 whose detail names the parameter and the position at fault;
    the message repeats the text with a caret under that position."""
    if text is None:
        return None
    try:
        return parse(text)
    except query.QueryError as error:
        detail = {"path": parameter, "message": str(error), "type": f"invalid_{parameter}"}
        raise FilterError(
            f"invalid request: {parameter}: {error}\n{error.caret(text)}", [detail]
        ) from None


def _checked_filter(text: str) -> query.Expr:
    return spec_fields.checked(query.parse_filter(text))


WHERE_HELP = (
    "A filter, e.g. `spec.model.n_embd in (14, 28) and result.final.facts_acc >= 0.9 and "
    'status = "succeeded"`: fields `spec.<path>`, `result.<path>`, `status`, `kind`, `tag`, '
    "`sweep_id`, `created_at`, `name`, `id`; operators `= != < <= > >= in`, `is [not] null`, "
    "`and`, `or`, `not`, parentheses. A missing value matches no comparison (SQL null). "
    "See docs/api.md."
)
SORT_HELP = (
    "A field to sort by (as in `where`), `-` first for descending; missing values last, "
    "ties newest first. Replaces the default order."
)


def _listing(
    kind: str | None = None,
    status: RunStatus | None = None,
    tag: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    sweep_id: Annotated[
        uuid.UUID | None,
        Query(description="Only this sweep's children, in the sweep's cell order."),
    ] = None,
    where: Annotated[str | None, Query(max_length=4000, description=WHERE_HELP)] = None,
    sort: Annotated[str | None, Query(max_length=400, description=SORT_HELP)] = None,
    project_id: Annotated[uuid.UUID | None, Query(description="Only runs of this project.")] = None,
) -> Listing:
    return Listing(
        kind=kind,
        status=status,
        tag=tag,
        limit=limit,
        offset=offset,
        sweep_id=sweep_id,
        where=_parsed(_checked_filter, where, "where"),
        sort=_parsed(query.parse_sort, sort, "sort"),
        project_id=project_id,
    )


ListingDep = Annotated[Listing, Depends(_listing)]


def list_runs(
    session: Session,
    run_type: RunType,
    listing: Listing,
    principal: Principal,
    target_id: uuid.UUID | None = None,
) -> repository.RunPage:
    """One page of runs of `run_type` that `principal` sees, newest first, matching the
    listing's filters."""
    return repository.list_kept_runs(
        session,
        listing.kept(run_type, principal, target_id),
        limit=listing.limit,
        offset=listing.offset,
        sort=listing.sort,
    )


def run_facets(
    session: Session, run_type: RunType, listing: Listing, principal: Principal
) -> dict[str, dict[str, int]]:
    """Counts of the runs of `run_type` that `principal` sees and `listing` keeps, by
    status, kind, tag and project (`store.repository.run_facets`)."""
    kept = listing.kept(run_type, principal)
    return repository.run_facets(session, kept, visible=principal.visible_projects())
