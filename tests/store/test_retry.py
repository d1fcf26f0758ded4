"""retry_on_outage waits out connection failures, within its budget, and nothing else."""

from collections.abc import Callable

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from store.retry import retry_on_outage


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def flaky(failures: int, error: Exception) -> Callable[[], str]:
    calls = {"n": 0}

    def work() -> str:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise error
        return "done"

    return work


OUTAGE = OperationalError("SELECT 1", {}, Exception("connection refused"))


def test_an_outage_shorter_than_the_budget_is_waited_out_with_backoff() -> None:
    time = FakeTime()
    result = retry_on_outage(
        flaky(4, OUTAGE),
        budget_s=60,
        what="test",
        sleep=time.sleep,
        clock=time.clock,
    )
    assert result == "done"
    assert time.sleeps == [0.5, 1.0, 2.0, 4.0]


def test_an_outage_longer_than_the_budget_raises() -> None:
    time = FakeTime()
    with pytest.raises(OperationalError):
        retry_on_outage(
            flaky(100, OUTAGE),
            budget_s=10,
            what="test",
            sleep=time.sleep,
            clock=time.clock,
        )
    assert sum(time.sleeps) <= 10


def test_other_database_errors_are_not_retried() -> None:
    time = FakeTime()
    integrity = IntegrityError("INSERT", {}, Exception("duplicate"))
    with pytest.raises(IntegrityError):
        retry_on_outage(
            flaky(1, integrity),
            budget_s=60,
            what="test",
            sleep=time.sleep,
            clock=time.clock,
        )
    assert time.sleeps == []
