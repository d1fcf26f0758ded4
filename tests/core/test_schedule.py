"""The learning rate warms up linearly, decays to min_lr by decay_steps, then stays there."""

import pytest

from core.specs import TrainSpec
from core.training.schedule import learning_rate


def test_warmup_is_linear_and_reaches_the_peak() -> None:
    spec = TrainSpec(steps=100, lr=1.0, min_lr=0.0, warmup_steps=10)
    assert [learning_rate(s, spec) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])


def test_cosine_decay_ends_at_min_lr_at_decay_steps_and_holds() -> None:
    spec = TrainSpec(steps=300, lr=0.01, min_lr=1e-4, warmup_steps=100, decay_steps=250)
    assert learning_rate(100, spec) == pytest.approx(0.01)
    assert learning_rate(175, spec) == pytest.approx((0.01 + 1e-4) / 2)
    assert learning_rate(250, spec) == pytest.approx(1e-4)
    assert learning_rate(299, spec) == pytest.approx(1e-4)


def test_linear_and_constant_schedules() -> None:
    linear = TrainSpec(steps=10, lr=1.0, min_lr=0.0, warmup_steps=0, schedule="linear")
    constant = TrainSpec(steps=10, lr=0.3, min_lr=0.0, warmup_steps=0, schedule="constant")
    assert learning_rate(5, linear) == pytest.approx(0.5)
    assert {learning_rate(s, constant) for s in range(10)} == {0.3}
