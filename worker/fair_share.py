"""Which queued runs take the free worker slots, and in what order (MEMLAB_DISPATCH=fair).

Pure: `choose` sees the slots and the candidates and returns the runs to publish and why
the others wait. Order: the owner whose runs were last handed out longest ago goes first
(never = first of all), then the oldest run; each pick makes its owner the most recent.
So a user's 500-run sweep and a colleague's single run alternate, slot by slot. Quotas
cap the runs a user or a project has running or handed out at once: over them a run
waits, queued, with the reason.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime

NEVER = (0, 0.0)  # the recency of an owner with no run handed out yet: first in line


@dataclass(frozen=True)
class Candidate:
    """A queued run not yet handed to the broker."""

    id: uuid.UUID
    queue: str
    owner: uuid.UUID
    project: uuid.UUID
    created_at: datetime


@dataclass
class NodeSlots:
    """A live worker node's free pool processes, and the queues it consumes."""

    name: str
    queues: frozenset[str]
    free: int


@dataclass(frozen=True)
class Quotas:
    """Runs running or handed out at once; 0 = no cap."""

    per_user: int = 0
    per_project: int = 0


@dataclass
class Active:
    """Runs running or handed out now, by owner and by project."""

    by_owner: Counter[uuid.UUID] = field(default_factory=Counter)
    by_project: Counter[uuid.UUID] = field(default_factory=Counter)


@dataclass
class Choice:
    publish: list[Candidate] = field(default_factory=list)
    waiting: dict[uuid.UUID, str] = field(default_factory=dict)  # run id → why it waits


def choose(
    candidates: list[Candidate],
    nodes: list[NodeSlots],
    last_use: dict[uuid.UUID, datetime],
    active: Active,
    quotas: Quotas,
    offered: set[str] | None = None,
) -> Choice:
    """Fill each node's free slots with runs of its queues, fairly across owners.

    `offered`: every queue a live node takes, its slots free or not (default: the queues
    of `nodes`); a run of another queue waits for a worker, not for a slot.
    """
    choice = Choice()
    if offered is None:
        offered = {queue for node in nodes for queue in node.queues}
    # One line per (queue, owner, project), oldest run first: a pick compares the heads
    # of the lines only, so a pass costs slots x lines, not slots x runs.
    lines: dict[tuple[str, uuid.UUID, uuid.UUID], deque[Candidate]] = defaultdict(deque)
    for run in sorted(candidates, key=lambda run: run.created_at):
        lines[(run.queue, run.owner, run.project)].append(run)
    # A counter stands for "now": each pick is more recent than every earlier use.
    recency = {owner: (1, used.timestamp()) for owner, used in last_use.items()}
    tick = 0
    for node in nodes:
        for _ in range(node.free):
            heads = [
                line[0]
                for (queue, _, _), line in lines.items()
                if line and queue in node.queues and _within_quotas(line[0], active, quotas) is None
            ]
            if not heads:
                break
            best = min(heads, key=lambda run: (recency.get(run.owner, NEVER), run.created_at))
            tick += 1
            recency[best.owner] = (2, float(tick))
            active.by_owner[best.owner] += 1
            active.by_project[best.project] += 1
            choice.publish.append(best)
            lines[(best.queue, best.owner, best.project)].popleft()
    for line in lines.values():
        for run in line:
            reason = _within_quotas(run, active, quotas)
            if run.queue not in offered:
                reason = f"waiting: no live worker takes the {run.queue} queue"
            choice.waiting[run.id] = reason or "waiting for a free worker slot"
    return choice


def _within_quotas(run: Candidate, active: Active, quotas: Quotas) -> str | None:
    """None if the run may start now, else why not."""
    if quotas.per_user and active.by_owner[run.owner] >= quotas.per_user:
        return (
            f"waiting: its submitter has {quotas.per_user} runs running or handed out, the "
            "quota (MEMLAB_QUOTA_RUNS_PER_USER)"
        )
    if quotas.per_project and active.by_project[run.project] >= quotas.per_project:
        return (
            f"waiting: its project has {quotas.per_project} runs running or handed out, the "
            "quota (MEMLAB_QUOTA_RUNS_PER_PROJECT)"
        )
    return None
