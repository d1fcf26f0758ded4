"""Retrying database work through an outage, with exponential backoff and a time budget."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Connection-level failures (server down, SQLite busy): worth waiting out. Anything else,
# an IntegrityError say, is a bug that retrying would only hide.
OUTAGE_ERRORS = (OperationalError, InterfaceError, PoolTimeoutError)


def retry_on_outage(
    work: Callable[[], T],
    *,
    budget_s: float,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run `work`, retrying outage errors with backoff (0.5 s doubling to 30 s) for `budget_s`."""
    deadline = clock() + budget_s
    delay = 0.5
    while True:
        try:
            return work()
        except OUTAGE_ERRORS as error:
            if clock() + delay > deadline:
                raise
            log.warning(
                "%s failed (%s); retrying in %.1fs", what, str(error).splitlines()[0], delay
            )
            sleep(delay)
            delay = min(delay * 2, 30.0)
