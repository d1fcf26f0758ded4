"""identity: users, API keys, projects and their members; runs and sweeps in projects

Adds `users`, `api_keys` (the SHA-256 of each key, never the key), `projects` and
`project_members` (a role per user and project), and on `runs` and `sweeps` the project
a row belongs to and the user who submitted it. The built-in `local` user and project
are created, the user a maintainer of the project, and every existing run and sweep
moves to them: a server without authentication keeps working as before.

Revision ID: 0008
Revises: 0007
"""

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

LOCAL_USER_ID = uuid.UUID("00000000-0000-0000-0000-000000000001")
LOCAL_PROJECT_ID = uuid.UUID("00000000-0000-0000-0000-000000000001")
_OWNED = ("runs", "sweeps")


def upgrade() -> None:
    users = op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_keys_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_user_id"), ["user_id"], unique=False)
    projects = op.create_table(
        "projects",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("personal_of", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["personal_of"],
            ["users.id"],
            name=op.f("fk_projects_personal_of_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("name", name=op.f("uq_projects_name")),
        sa.UniqueConstraint("personal_of", name=op.f("uq_projects_personal_of")),
    )
    members = op.create_table(
        "project_members",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column(
            "role",
            sa.Enum("viewer", "member", "maintainer", name="role", native_enum=False, length=16),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_project_members_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_project_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "user_id", name=op.f("pk_project_members")),
    )
    with op.batch_alter_table("project_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_project_members_user_id"), ["user_id"], unique=False)

    now = datetime.now(UTC)
    op.bulk_insert(
        users, [{"id": LOCAL_USER_ID, "name": "local", "is_admin": True, "created_at": now}]
    )
    op.bulk_insert(
        projects,
        [
            {
                "id": LOCAL_PROJECT_ID,
                "name": "local",
                "personal_of": LOCAL_USER_ID,
                "created_at": now,
            }
        ],
    )
    op.bulk_insert(
        members, [{"project_id": LOCAL_PROJECT_ID, "user_id": LOCAL_USER_ID, "role": "maintainer"}]
    )

    for table in _OWNED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("project_id", sa.Uuid(), nullable=True))
            batch_op.add_column(sa.Column("submitted_by", sa.Uuid(), nullable=True))
        owned = sa.table(
            table, sa.column("project_id", sa.Uuid()), sa.column("submitted_by", sa.Uuid())
        )
        op.execute(owned.update().values(project_id=LOCAL_PROJECT_ID, submitted_by=LOCAL_USER_ID))
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("project_id", existing_type=sa.Uuid(), nullable=False)
            batch_op.alter_column("submitted_by", existing_type=sa.Uuid(), nullable=False)
            batch_op.create_index(
                batch_op.f(f"ix_{table}_project_id"), ["project_id"], unique=False
            )
            batch_op.create_foreign_key(
                batch_op.f(f"fk_{table}_project_id_projects"), "projects", ["project_id"], ["id"]
            )
            batch_op.create_foreign_key(
                batch_op.f(f"fk_{table}_submitted_by_users"), "users", ["submitted_by"], ["id"]
            )


def downgrade() -> None:
    for table in _OWNED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(
                batch_op.f(f"fk_{table}_submitted_by_users"), type_="foreignkey"
            )
            batch_op.drop_constraint(
                batch_op.f(f"fk_{table}_project_id_projects"), type_="foreignkey"
            )
            batch_op.drop_index(batch_op.f(f"ix_{table}_project_id"))
            batch_op.drop_column("submitted_by")
            batch_op.drop_column("project_id")
    with op.batch_alter_table("project_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_project_members_user_id"))
    op.drop_table("project_members")
    op.drop_table("projects")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_user_id"))
    op.drop_table("api_keys")
    op.drop_table("users")
