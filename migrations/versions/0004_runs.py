"""runs: the table of experiments and probes is named for what it holds

Renames in place, keeping every row: `experiments` → `runs`, `experiment_tags` →
`run_tags`, the columns that point at a run (`experiment_id` → `run_id`, except in
`idempotency_keys`, which only ever names an experiment), and every index and
constraint to the name the MetaData naming convention gives it now.

PostgreSQL renames each object (no copy, no revalidation). SQLite cannot rename a
constraint, so each table is rebuilt in batch mode; migrations/env.py turns SQLite's
foreign keys off while it migrates, because dropping the old copy of a parent table
would otherwise cascade-delete its children's rows.

Revision ID: 0004
Revises: 0003
"""

from dataclasses import dataclass

from alembic import op

# No `from __future__ import annotations`: Alembic loads this file outside sys.modules,
# where dataclasses cannot resolve string annotations.
revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


@dataclass(frozen=True)
class Rename:
    """One name before and after the migration."""

    old: str
    new: str

    def reversed(self) -> "Rename":
        return Rename(self.new, self.old)


@dataclass(frozen=True)
class ForeignKey:
    """A foreign key to a run's id, by its names and its local column's names."""

    name: Rename
    column: Rename
    referred_table: Rename

    def reversed(self) -> "ForeignKey":
        return ForeignKey(
            self.name.reversed(), self.column.reversed(), self.referred_table.reversed()
        )


@dataclass(frozen=True)
class Keyed:
    """A primary key, unique constraint or index, by its names and its columns' names."""

    name: Rename
    columns: tuple[Rename, ...]

    def reversed(self) -> "Keyed":
        return Keyed(self.name.reversed(), tuple(c.reversed() for c in self.columns))


@dataclass(frozen=True)
class TableRenames:
    """Everything one table renames: itself, a column, its constraints and its indexes."""

    table: Rename
    column: Rename | None = None
    primary_key: Keyed | None = None
    foreign_keys: tuple[ForeignKey, ...] = ()
    unique: tuple[Keyed, ...] = ()
    indexes: tuple[Keyed, ...] = ()

    def reversed(self) -> "TableRenames":
        return TableRenames(
            table=self.table.reversed(),
            column=self.column.reversed() if self.column else None,
            primary_key=self.primary_key.reversed() if self.primary_key else None,
            foreign_keys=tuple(fk.reversed() for fk in self.foreign_keys),
            unique=tuple(u.reversed() for u in self.unique),
            indexes=tuple(i.reversed() for i in self.indexes),
        )


RUNS = Rename("experiments", "runs")
RUN_ID = Rename("experiment_id", "run_id")
SAME_EXPERIMENT_ID = Rename("experiment_id", "experiment_id")


def _same(*names: str) -> tuple[Rename, ...]:
    return tuple(Rename(name, name) for name in names)


def _index(table: Rename, column: str) -> Keyed:
    """An index named by the convention `ix_<table>_<column>`, on a column kept as is."""
    return Keyed(Rename(f"ix_{table.old}_{column}", f"ix_{table.new}_{column}"), _same(column))


RENAMES = (
    TableRenames(
        table=RUNS,
        primary_key=Keyed(Rename("pk_experiments", "pk_runs"), _same("id")),
        foreign_keys=(
            ForeignKey(
                Rename("fk_experiments_target_id_experiments", "fk_runs_target_id_runs"),
                Rename("target_id", "target_id"),
                RUNS,
            ),
        ),
        indexes=(
            Keyed(
                Rename("ix_experiments_created_at_id", "ix_runs_created_at_id"),
                _same("created_at", "id"),
            ),
            *(
                _index(RUNS, column)
                for column in ("kind", "spec_hash", "status", "run_type", "target_id")
            ),
        ),
    ),
    TableRenames(
        table=Rename("experiment_tags", "run_tags"),
        column=RUN_ID,
        primary_key=Keyed(
            Rename("pk_experiment_tags", "pk_run_tags"), (RUN_ID, Rename("tag", "tag"))
        ),
        foreign_keys=(
            ForeignKey(
                Rename("fk_experiment_tags_experiment_id_experiments", "fk_run_tags_run_id_runs"),
                RUN_ID,
                RUNS,
            ),
        ),
        indexes=(Keyed(Rename("ix_experiment_tags_tag", "ix_run_tags_tag"), _same("tag")),),
    ),
    TableRenames(
        table=Rename("metric_points", "metric_points"),
        column=RUN_ID,
        foreign_keys=(
            ForeignKey(
                Rename(
                    "fk_metric_points_experiment_id_experiments", "fk_metric_points_run_id_runs"
                ),
                RUN_ID,
                RUNS,
            ),
        ),
        # The name stays; on SQLite the rebuild re-creates it over the renamed column.
        unique=(
            Keyed(
                Rename("uq_metric_points_series_step", "uq_metric_points_series_step"),
                (RUN_ID, *_same("key", "step")),
            ),
        ),
    ),
    TableRenames(
        table=Rename("artifacts", "artifacts"),
        column=RUN_ID,
        foreign_keys=(
            ForeignKey(
                Rename("fk_artifacts_experiment_id_experiments", "fk_artifacts_run_id_runs"),
                RUN_ID,
                RUNS,
            ),
        ),
        unique=(
            Keyed(
                Rename("uq_artifacts_experiment_path", "uq_artifacts_run_path"),
                (RUN_ID, Rename("path", "path")),
            ),
        ),
        indexes=(Keyed(Rename("ix_artifacts_experiment_id", "ix_artifacts_run_id"), (RUN_ID,)),),
    ),
    TableRenames(
        table=Rename("idempotency_keys", "idempotency_keys"),
        foreign_keys=(
            ForeignKey(
                Rename(
                    "fk_idempotency_keys_experiment_id_experiments",
                    "fk_idempotency_keys_experiment_id_runs",
                ),
                SAME_EXPERIMENT_ID,
                RUNS,
            ),
        ),
    ),
)


def upgrade() -> None:
    _apply(RENAMES)


def downgrade() -> None:
    _apply(tuple(renames.reversed() for renames in RENAMES))


def _apply(all_renames: tuple[TableRenames, ...]) -> None:
    # Tables first: SQLite (3.26+) rewrites the REFERENCES clauses of other tables as it
    # renames, and the per-table steps below then name the tables as they now are.
    for renames in all_renames:
        if renames.table.old != renames.table.new:
            op.rename_table(renames.table.old, renames.table.new)
    # Columns next, natively on both (SQLite 3.25+ renames them inside its constraints
    # and indexes too); a batch rebuild would still know a renamed column by its old name.
    for renames in all_renames:
        if renames.column is not None:
            op.execute(
                f"ALTER TABLE {_quoted(renames.table.new)} RENAME COLUMN "
                f"{_quoted(renames.column.old)} TO {_quoted(renames.column.new)}"
            )
    apply_table = _rename_in_place if op.get_bind().dialect.name == "postgresql" else _rebuild
    for renames in all_renames:
        apply_table(renames)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _rename_in_place(renames: TableRenames) -> None:
    """PostgreSQL: rename the constraints and indexes; no row is copied."""
    table = renames.table.new
    constraints = [
        *([renames.primary_key.name] if renames.primary_key else []),
        *(fk.name for fk in renames.foreign_keys),
        *(unique.name for unique in renames.unique),
    ]
    for name in constraints:
        if name.old != name.new:  # a constraint's backing index is renamed with it
            op.execute(
                f"ALTER TABLE {_quoted(table)} RENAME CONSTRAINT {_quoted(name.old)} "
                f"TO {_quoted(name.new)}"
            )
    for index in renames.indexes:
        op.execute(f"ALTER INDEX {_quoted(index.name.old)} RENAME TO {_quoted(index.name.new)}")


def _rebuild(renames: TableRenames) -> None:
    """SQLite: copy the table into one that carries the new names (batch mode)."""
    with op.batch_alter_table(renames.table.new, recreate="always") as batch:
        if renames.primary_key is not None:
            batch.drop_constraint(renames.primary_key.name.old, type_="primary")
            batch.create_primary_key(
                renames.primary_key.name.new, [c.new for c in renames.primary_key.columns]
            )
        for fk in renames.foreign_keys:
            batch.drop_constraint(fk.name.old, type_="foreignkey")
            batch.create_foreign_key(
                fk.name.new, fk.referred_table.new, [fk.column.new], ["id"], ondelete="CASCADE"
            )
        for unique in renames.unique:
            batch.drop_constraint(unique.name.old, type_="unique")
            batch.create_unique_constraint(unique.name.new, [c.new for c in unique.columns])
        for index in renames.indexes:
            batch.drop_index(index.name.old)
            batch.create_index(index.name.new, [c.new for c in index.columns])
