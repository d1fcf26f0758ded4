"""Which children of a sweep train together: the batched groups, planned at submission.

Children whose specs differ only in what an ensemble batches (`core.batching`) share a
key; each key's children are cut into groups of at most `MEMLAB_MAX_ENSEMBLE_MEMBERS`
whose estimated training memory stays under `MEMLAB_MAX_GROUP_MEMORY_MB`. A kind that
cannot be batched, or a key with one child, runs one child per task.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.batching import batch_key, batch_refusal, training_memory_bytes
from core.specs import ExperimentSpec, TrainedSpec
from store.models import Run
from store.settings import Settings


def plan_groups(
    children: Sequence[tuple[Run, ExperimentSpec]], settings: Settings
) -> list[list[Run]]:
    """The groups of two or more children that train as one ensemble, in submission order."""
    by_key: dict[str, list[tuple[Run, TrainedSpec]]] = {}
    for run, spec in children:
        if isinstance(spec, TrainedSpec) and batch_refusal(spec) is None:
            by_key.setdefault(batch_key(spec), []).append((run, spec))
    groups = []
    for members in by_key.values():
        size = group_size(members[0][1], settings)
        for start in range(0, len(members), size):
            chunk = [run for run, _ in members[start : start + size]]
            if len(chunk) > 1:
                groups.append(chunk)
    return groups


def group_size(spec: TrainedSpec, settings: Settings) -> int:
    """Members per group for children of this shape: the cap, or fewer when memory binds."""
    budget = settings.max_group_memory_mb * 2**20
    fits = max(1, budget // max(1, training_memory_bytes(spec)))
    return int(min(settings.max_ensemble_members, fits))
