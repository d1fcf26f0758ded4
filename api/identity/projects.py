"""/v1/projects: the projects a user is in, shared projects, and their members.

Any user may create a project (becoming its maintainer); its members see its runs.
A maintainer gives roles and removes members; anyone may leave. A project always
keeps one maintainer. A project you are not in is a 404.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Response, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth import Principal, PrincipalDep
from api.deps import DatabaseDep
from api.errors import ConflictError, NotFoundError
from api.identity.schemas import (
    MemberOut,
    MemberSet,
    ProjectCreate,
    ProjectList,
    ProjectOut,
    ProjectRole,
    UserName,
)
from api.openapi import FORBIDDEN
from store import identity
from store.audit import AuditAction
from store.models import Project, Role, User

router = APIRouter(prefix="/v1/projects", tags=["projects"])

NAME_TAKEN: dict[int | str, dict[str, Any]] = {
    409: {"description": "A project or user of that name exists."}
}
LAST_MAINTAINER: dict[int | str, dict[str, Any]] = {
    409: {"description": "It would leave the project without a maintainer."}
}


@router.get("", response_model=ProjectList)
async def list_projects(database: DatabaseDep, principal: PrincipalDep) -> ProjectList:
    """The projects you are in, with your role in each, by name."""

    def listing(session: Session) -> ProjectList:
        statement = select(Project).order_by(Project.name)
        visible = principal.visible_projects()
        if visible is not None:
            statement = statement.where(Project.id.in_(visible))
        return ProjectList(
            items=[
                ProjectRole.of(project, principal.roles.get(project.id))
                for project in session.scalars(statement)
            ]
        )

    return await database.run(listing)


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=ProjectOut, responses=NAME_TAKEN
)
async def create_project(
    body: ProjectCreate, database: DatabaseDep, principal: PrincipalDep
) -> ProjectOut:
    """A shared project, with you as its maintainer; submit to it with `project_id`."""

    def create(session: Session) -> ProjectOut:
        try:
            project = identity.create_project(session, body.name, principal.user_id)
        except identity.IdentityError as error:
            raise ConflictError(str(error)) from error
        principal.audit(
            session,
            AuditAction.project_created,
            project_id=project.id,
            target=project.name,
        )
        session.commit()
        return _project_out(session, project, Role.maintainer)

    return await database.run(create)


@router.get("/{project_id}", response_model=ProjectOut)
async def get_project(
    project_id: uuid.UUID, database: DatabaseDep, principal: PrincipalDep
) -> ProjectOut:
    """The project with its members."""

    def read(session: Session) -> ProjectOut:
        project = _project_or_404(session, principal, project_id)
        return _project_out(session, project, principal.roles.get(project.id))

    return await database.run(read)


@router.put(
    "/{project_id}/members/{user_name}",
    response_model=MemberOut,
    responses={**FORBIDDEN, **LAST_MAINTAINER},
)
async def set_member(
    project_id: uuid.UUID,
    user_name: UserName,
    body: MemberSet,
    database: DatabaseDep,
    principal: PrincipalDep,
) -> MemberOut:
    """Add the user to the project in `role`, or change its role (maintainers only)."""

    def set_role(session: Session) -> MemberOut:
        project = _project_or_404(session, principal, project_id)
        principal.require(project.id, Role.maintainer, "manage members", what="the project")
        user = _user_or_404(session, user_name)
        try:
            previous = identity.set_role(session, project.id, user.id, body.role)
        except identity.IdentityError as error:
            raise ConflictError(str(error)) from error
        principal.audit(
            session,
            AuditAction.member_role_set,
            project_id=project.id,
            target=user.name,
            detail={"role": body.role.value, "previous": previous and previous.value},
        )
        session.commit()
        return MemberOut.of(user, body.role)

    return await database.run(set_role)


@router.delete(
    "/{project_id}/members/{user_name}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**FORBIDDEN, **LAST_MAINTAINER},
)
async def remove_member(
    project_id: uuid.UUID, user_name: UserName, database: DatabaseDep, principal: PrincipalDep
) -> Response:
    """Take the user out of the project: maintainers remove anyone, anyone leaves."""

    def remove(session: Session) -> None:
        project = _project_or_404(session, principal, project_id)
        if user_name != principal.name:  # before the lookup: a viewer learns no user names
            principal.require(project.id, Role.maintainer, "manage members", what="the project")
        user = _user_or_404(session, user_name)
        try:
            previous = identity.remove_member(session, project.id, user.id)
        except identity.IdentityError as error:
            raise ConflictError(str(error)) from error
        if previous is None:
            raise NotFoundError(f"{user.name} is not a member of this project")
        principal.audit(
            session,
            AuditAction.member_removed,
            project_id=project.id,
            target=user.name,
            detail={"previous": previous.value},
        )
        session.commit()

    await database.run(remove)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _project_or_404(session: Session, principal: Principal, project_id: uuid.UUID) -> Project:
    project = session.get(Project, project_id)
    if project is None or not principal.can_see(project.id):
        raise NotFoundError("the project was not found")
    return project


def _user_or_404(session: Session, name: str) -> User:
    user = identity.user_named(session, name)
    if user is None:
        raise NotFoundError(f"no user named {name!r}")
    return user


def _project_out(session: Session, project: Project, role: Role | None) -> ProjectOut:
    members = [MemberOut.of(user, role) for user, role in identity.members_of(session, project.id)]
    return ProjectOut(
        **ProjectRole.of(project, role).model_dump(), created_at=project.created_at, members=members
    )
