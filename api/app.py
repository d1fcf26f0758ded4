"""The FastAPI application factory (`uvicorn api.app:create_app --factory`)."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from api.dispatch import CeleryDispatcher, Dispatcher
from api.errors import install_error_handlers
from api.experiments.endpoints import router as experiments_router
from api.health import router as health_router
from api.kinds import router as kinds_router
from api.schemas import KIND_NAMES
from store.db import make_engine, make_session_factory
from store.settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, dispatcher: Dispatcher | None = None) -> FastAPI:
    """Build the app for `settings` (default: from MEMLAB_* variables)."""
    settings = settings or Settings()
    settings.ensure_dirs()
    if dispatcher is None:
        from worker.celery_config import create_celery

        dispatcher = CeleryDispatcher(create_celery(settings))
    engine = make_engine(settings.resolved_database_url)

    app = FastAPI(
        title="memlab",
        version="0.1.0",
        description="A lab server for research on memorization: submit experiments, "
        "follow them, query their results.",
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = make_session_factory(engine)
    app.state.dispatcher = dispatcher
    install_error_handlers(app, KIND_NAMES)
    app.include_router(health_router)
    app.include_router(kinds_router)
    app.include_router(experiments_router)
    return app
