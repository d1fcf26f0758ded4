"""api_keys: dashboard sessions

A dashboard login exchanges an API key for a short-lived key of the same user, kept in
an HttpOnly cookie (api/dashboard/session.py). `session_of` names the key it was
exchanged for, so that revoking that key revokes its sessions too.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("session_of", sa.Uuid(), nullable=True))
        batch_op.create_index("ix_api_keys_session_of", ["session_of"])
        batch_op.create_foreign_key(
            batch_op.f("fk_api_keys_session_of_api_keys"),
            "api_keys",
            ["session_of"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_api_keys_session_of_api_keys"), type_="foreignkey"
        )
        batch_op.drop_index("ix_api_keys_session_of")
        batch_op.drop_column("session_of")
