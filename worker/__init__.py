"""Celery app and thin tasks: claim a run, build its spec, call core, write results."""
