"""HTTP routes for who is who: the caller itself, API keys, projects and members, the audit log."""
