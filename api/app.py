"""The FastAPI application factory (`uvicorn api.app:create_app --factory`)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from api.auth import get_principal
from api.dashboard.pages import install_dashboard
from api.dashboard.session import router as session_router
from api.deps import Database
from api.errors import install_error_handlers
from api.experiments.endpoints import router as experiments_router
from api.health import router as health_router
from api.identity.audit import router as audit_router
from api.identity.keys import router as keys_router
from api.identity.me import router as me_router
from api.identity.projects import router as projects_router
from api.kinds import router as kinds_router
from api.limits import BodySizeLimit
from api.metrics import install_metrics
from api.openapi import install_openapi
from api.probes.endpoints import kinds_router as probe_kinds_router
from api.probes.endpoints import router as probes_router
from api.rate_limits import rate_limiter_for
from api.schemas import KIND_NAMES
from api.server_limits import check_computed_limit_settings, warm_up_estimates
from api.sweeps.endpoints import router as sweeps_router
from api.workers import router as workers_router
from core.catalog import all_kinds
from store.db import make_engine, make_session_factory
from store.settings import Settings
from worker.dispatch import CeleryDispatcher, Dispatcher
from worker.fair_dispatch import DispatcherThread
from worker.reaper import ReaperThread

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    dispatcher: Dispatcher | None = None,
    run_reaper: bool = True,
) -> FastAPI:
    """Build the app for `settings` (default: from MEMLAB_* variables).

    With `run_reaper`, the app runs the reaper (worker.reaper) and the dispatcher
    (worker.fair_dispatch) in threads while it serves; without, nothing it accepts is
    handed to the broker (tests call `dispatch_pass` themselves).
    """
    settings = settings or Settings()
    settings.ensure_dirs()
    check_computed_limit_settings(all_kinds().values())
    if dispatcher is None:
        from worker.celery_config import create_celery

        dispatcher = CeleryDispatcher(create_celery(settings))
    # The pool covers the endpoint thread pool (40 threads), so a burst queues on threads,
    # not on connections.
    engine = make_engine(
        settings.resolved_database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )
    sessions = make_session_factory(engine)

    # Submissions only commit their runs and wake the dispatcher; it hands them out. A
    # thread starts once, so each lifespan (a TestClient may enter it again) makes its own.
    dispatchers: list[DispatcherThread] = []

    def wake_dispatcher() -> None:
        for thread in dispatchers:
            thread.wake()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        warm_up_estimates(all_kinds().values())
        background: list[ReaperThread | DispatcherThread] = []
        if run_reaper:
            dispatchers[:] = [DispatcherThread(sessions, dispatcher, settings)]
            background = [ReaperThread(sessions, settings), *dispatchers]
        for thread in background:
            thread.start()
        yield
        for thread in background:
            thread.stop()
        for thread in background:  # a pass under way ends before the engine goes
            thread.join(timeout=settings.reaper_interval_s)
        engine.dispose()

    app = FastAPI(
        lifespan=lifespan,
        title="memlab",
        version="0.1.0",
        description="A lab server for research on memorization: submit experiments, "
        "follow them, query their results.",
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = sessions
    app.state.database = Database(sessions)
    app.state.dispatcher = dispatcher
    app.state.wake_dispatcher = wake_dispatcher
    app.state.rate_limiter = rate_limiter_for(settings)
    install_error_handlers(app, KIND_NAMES)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # The only routes open without an API key: health checks, the dashboard's login and
    # its page shells and scripts (which hold no data).
    app.include_router(health_router)
    app.include_router(session_router)
    authenticated = [Depends(get_principal)]
    app.include_router(kinds_router, dependencies=authenticated)
    app.include_router(experiments_router, dependencies=authenticated)
    app.include_router(probe_kinds_router, dependencies=authenticated)
    app.include_router(probes_router, dependencies=authenticated)
    app.include_router(sweeps_router, dependencies=authenticated)
    app.include_router(workers_router, dependencies=authenticated)
    for identity_router in (me_router, keys_router, projects_router, audit_router):
        app.include_router(identity_router, dependencies=authenticated)
    install_metrics(app)
    install_openapi(app)
    install_dashboard(app)
    return app
