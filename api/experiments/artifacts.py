"""Where a run's stored file lies on disk, for its download."""

from __future__ import annotations

from pathlib import Path

from api.errors import NotFoundError


def artifact_file(root: Path, relative: str) -> Path:
    """The file `relative` (as an artifact row stores it) under the artifact root: a 404
    where it has gone from disk, or where the path would lead out of the root (a row is
    written by a worker, but a download must never serve another file of the server's)."""
    base = root.resolve()
    file = (base / relative).resolve()
    if not file.is_relative_to(base) or not file.is_file():
        raise NotFoundError(f"the artifact {relative!r} is not on this server's disk")
    return file
