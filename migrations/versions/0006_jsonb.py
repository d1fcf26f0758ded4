"""runs.spec and runs.result as JSONB on PostgreSQL

The experiment filter (`GET /v1/experiments?where=`) reads values out of these two
columns; JSONB is parsed once on write, and gives `#>` / `jsonb_typeof` without reparsing
the text on every row. SQLite keeps its JSON text columns: nothing to do there.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_COLUMNS = ("spec", "result")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in _COLUMNS:
        op.alter_column(
            "runs",
            name,
            type_=postgresql.JSONB(),
            existing_type=sa.JSON(),
            postgresql_using=f"{name}::jsonb",
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in _COLUMNS:
        op.alter_column(
            "runs",
            name,
            type_=sa.JSON(),
            existing_type=postgresql.JSONB(),
            postgresql_using=f"{name}::json",
        )
