"""Persistence: settings, SQLAlchemy models, sessions, the run state machine, artifacts."""
