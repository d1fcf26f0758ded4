"""Specs stored before the schedule fields changed keep their hash and their numbers.

The fixtures in fixtures/specs_v1/ were written by the code before warmup and decay
could be given as fractions (make_fixtures.py there): every kind's stored default spec
with its hash, and a capacity_tradeoff run stopped at step 3 of 6 with the numbers of
the same run left uninterrupted.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from core.catalog import get_kind, parse_spec
from core.reporter import InMemoryReporter
from core.spec_model import spec_hash

FIXTURES = Path(__file__).parent / "fixtures" / "specs_v1"
STORED = json.loads((FIXTURES / "stored_specs.json").read_text())


@pytest.mark.parametrize("name", sorted(STORED))
def test_a_stored_spec_still_validates_and_hashes_the_same(name: str) -> None:
    stored = STORED[name]
    spec = parse_spec(stored["spec"])
    assert spec_hash(spec) == stored["spec_hash"]
    assert spec.train.warmup_fraction is None  # it keeps its absolute warmup


def test_a_stored_run_resumes_from_its_old_checkpoint_to_the_same_numbers(
    tmp_path: Path,
) -> None:
    stored = STORED["capacity_tradeoff/short"]
    expected = json.loads((FIXTURES / "capacity_tradeoff_short_result.json").read_text())
    reporter = InMemoryReporter(directory=tmp_path)
    shutil.copytree(
        FIXTURES / "capacity_tradeoff_short_checkpoints",
        reporter.checkpoint_dir(),
        dirs_exist_ok=True,
    )
    spec = parse_spec(stored["spec"])
    result = get_kind("capacity_tradeoff").run(spec, reporter)
    assert result["training"]["resumed_from_step"] == 3
    assert result["final"] == expected["final"]
    assert result["training"]["final_train_loss"] == pytest.approx(
        expected["final_train_loss"], rel=1e-6
    )
    after_resume = [point for point in expected["train_loss_series"] if point[0] > 3]
    resumed = reporter.series("train/loss")
    assert [step for step, _ in resumed] == [step for step, _ in after_resume]
    assert [loss for _, loss in resumed] == pytest.approx([loss for _, loss in after_resume])


def test_a_stored_spec_is_not_held_to_rules_added_since() -> None:
    stored = dict(STORED["capacity_tradeoff/short"]["spec"])
    # Accepted before decay_steps had to stay within steps; a new request is refused.
    stored["train"] = {**stored["train"], "decay_steps": 50}
    parse_spec(stored)
    kind = get_kind("capacity_tradeoff")
    with pytest.raises(ValueError, match="decay_steps"):
        kind.spec_class.model_validate(stored)
