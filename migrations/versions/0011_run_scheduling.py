"""runs: priority, the resources a run asks for, and the node it was handed to

Adds to `runs` what the dispatcher (worker/fair_dispatch.py) orders and routes by:
`priority` (higher first), `gpus` and `gpu_memory_gib` (a run is handed only to a node
with that many devices of that much memory), and `dispatched_to` (the node whose own
queue a routed run was published to; null for a run published to its shared queue).

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("gpus", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("gpu_memory_gib", sa.Float(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("dispatched_to", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("dispatched_to")
        batch_op.drop_column("gpu_memory_gib")
        batch_op.drop_column("gpus")
        batch_op.drop_column("priority")
