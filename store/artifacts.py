"""The artifact store: run outputs on a filesystem shared by the API and the workers."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StoredFile:
    relative_path: str
    size_bytes: int
    sha256: str


class ArtifactStore:
    """Files under `root/<experiment id>/`; the database keeps their relative paths."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def experiment_dir(self, experiment_id: uuid.UUID) -> Path:
        path = self.root / str(experiment_id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def checkpoint_dir(self, experiment_id: uuid.UUID) -> Path:
        path = self.experiment_dir(experiment_id) / "checkpoints"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def write(self, experiment_id: uuid.UUID, name: str, data: bytes) -> StoredFile:
        """Write an artifact named `name` (a plain file name, no folders)."""
        if not name or Path(name).name != name or name.startswith("."):
            raise ValueError(f"artifact name {name!r} must be a plain file name")
        path = self.experiment_dir(experiment_id) / "artifacts" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return self.describe(path)

    def describe(self, path: Path) -> StoredFile:
        """Size and SHA-256 of a file under the root."""
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return StoredFile(str(path.relative_to(self.root)), path.stat().st_size, digest.hexdigest())

    def resolve(self, relative_path: str) -> Path:
        """Absolute path of a stored file; refuses paths that escape the root."""
        path = (self.root / relative_path).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"artifact path {relative_path!r} escapes the artifact root")
        return path
