"""probes: runs that measure a finished experiment

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Batch mode: SQLite cannot add a foreign key to an existing table in place.
    with op.batch_alter_table("experiments") as batch:
        batch.add_column(
            sa.Column(
                "run_type",
                sa.Enum("experiment", "probe", name="runtype", native_enum=False, length=16),
                nullable=False,
                server_default="experiment",
            )
        )
        batch.add_column(sa.Column("target_id", sa.Uuid(), nullable=True))
        batch.create_foreign_key(
            "fk_experiments_target_id_experiments",
            "experiments",
            ["target_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_index("ix_experiments_run_type", ["run_type"])
        batch.create_index("ix_experiments_target_id", ["target_id"])


def downgrade() -> None:
    with op.batch_alter_table("experiments") as batch:
        batch.drop_index("ix_experiments_target_id")
        batch.drop_index("ix_experiments_run_type")
        batch.drop_constraint("fk_experiments_target_id_experiments", type_="foreignkey")
        batch.drop_column("target_id")
        batch.drop_column("run_type")
