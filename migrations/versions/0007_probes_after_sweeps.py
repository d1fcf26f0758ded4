"""probes that wait for a sweep: the shadow models of lira and counterfactual

Adds `runs.after_sweep_id`: a probe that reads shadow models is stored queued with the
sweep that trains them, and is published only once every child of that sweep has ended.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("after_sweep_id", sa.Uuid(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_runs_after_sweep_id"), ["after_sweep_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_runs_after_sweep_id_sweeps"),
            "sweeps",
            ["after_sweep_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_runs_after_sweep_id_sweeps"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_runs_after_sweep_id"))
        batch_op.drop_column("after_sweep_id")
