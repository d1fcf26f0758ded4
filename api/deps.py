"""FastAPI dependencies: the database runner, the dispatcher, the settings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from store.settings import Settings

T = TypeVar("T")


class Database:
    """Runs a unit of database work in the thread pool with a session of its own.

    Endpoints are async and hand all their database work, response model included, to
    one `run` call; the session is closed before the call returns. A session held by a
    dependency would stay checked out until FastAPI had validated the response, which
    for sync endpoints needs a thread from the same pool: under a burst of 200 POSTs,
    endpoints waiting for connections took every thread and finished requests could
    not hand theirs back (a deadlock until the pool's 30 s timeout).
    """

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        # Reads in autocommit: no BEGIN and no ROLLBACK, two round trips fewer per read.
        self._reads = sessions.kw["bind"].execution_options(isolation_level="AUTOCOMMIT")

    async def run(self, work: Callable[[Session], T]) -> T:
        def call() -> T:
            with self.sessions() as session:
                return work(session)

        return await run_in_threadpool(call)

    async def read(self, work: Callable[[Connection], T]) -> T:
        """`run` for reads of SQL expressions in autocommit, on a bare connection: no ORM
        session and no transaction to set up and tear down (the API key check, made on
        every request, uses it: it halves that check's cost on PostgreSQL)."""

        def call() -> T:
            with self._reads.connect() as connection:
                return work(connection)

        return await run_in_threadpool(call)


def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def get_wake_dispatcher(request: Request) -> Callable[[], None]:
    """Asks this process's dispatcher for a pass now: what a submission just committed
    is handed out without waiting for the next interval."""
    wake: Callable[[], None] = request.app.state.wake_dispatcher
    return wake


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


DatabaseDep = Annotated[Database, Depends(get_database)]
WakeDispatcherDep = Annotated[Callable[[], None], Depends(get_wake_dispatcher)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
