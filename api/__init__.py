"""The FastAPI application: routers, dependencies, error handlers."""
