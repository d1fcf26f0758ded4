"""`ScopedReporter`: one training inside a run, in its own folder or in the run's."""

from __future__ import annotations

from pathlib import Path

from core.reporter import InMemoryReporter
from core.training.scoped_reporter import ScopedReporter
from core.training.score_training import ScopedReporter as ReExported


def test_a_training_in_a_subfolder_keeps_its_checkpoints_off_the_runs_record(
    tmp_path: Path,
) -> None:
    run = InMemoryReporter(directory=tmp_path)
    scoped = ScopedReporter(run, tmp_path / "sft", "sft", start=0.0, span=0.8)
    assert scoped.checkpoint_dir() == tmp_path / "sft" and (tmp_path / "sft").is_dir()
    scoped.checkpoint_saved(5, [tmp_path / "sft" / "step_5.pt"])
    scoped.log_metrics(5, {"train/loss": 1.0})
    scoped.progress(0.5, "half")
    assert run.checkpoints == []
    assert run.metrics == [(5, "sft/train/loss", 1.0)]
    assert run.progress_log == [(0.4, "sft: half")]


def test_a_later_stage_in_the_runs_folder_records_checkpoints_and_logs_after_earlier_steps(
    tmp_path: Path,
) -> None:
    run = InMemoryReporter(directory=tmp_path)
    stage = ScopedReporter(
        run, None, "grpo", start=0.8, span=0.2, record_checkpoints=True, step_offset=600
    )
    assert stage.checkpoint_dir() == run.checkpoint_dir()
    stage.checkpoint_saved(50, [run.checkpoint_dir() / "step_50.pt"])
    stage.log_metrics(50, {"train/loss": 0.5})
    assert [step for step, _ in run.checkpoints] == [50]  # its own step, for resuming
    assert run.metrics == [(650, "grpo/train/loss", 0.5)]


def test_the_old_import_path_still_works() -> None:
    assert ReExported is ScopedReporter
