"""/v1/me: who the server takes the caller to be, and the projects it is in."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth import PrincipalDep
from api.deps import DatabaseDep
from api.identity.schemas import MeOut, ProjectRole
from store.models import Project

router = APIRouter(prefix="/v1/me", tags=["keys"])


@router.get("", response_model=MeOut)
async def get_me(database: DatabaseDep, principal: PrincipalDep) -> MeOut:
    """The caller: name, whether an admin, personal project, projects and roles."""

    def read(session: Session) -> MeOut:
        projects = session.scalars(
            select(Project).where(Project.id.in_(principal.roles)).order_by(Project.name)
        )
        return MeOut(
            id=principal.user_id,
            name=principal.name,
            is_admin=principal.is_admin,
            authenticated=not principal.sees_everything,
            personal_project=principal.personal_project,
            projects=[ProjectRole.of(p, principal.roles[p.id]) for p in projects],
        )

    return await database.run(read)
