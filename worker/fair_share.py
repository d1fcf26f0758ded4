"""Which queued runs take the free worker slots, and in what order.

Pure: `choose` sees the slots and the candidates and returns the runs to publish, the
node each is routed to, and why the others wait. Order: higher priority first;
within a priority, the owner whose runs were last handed out longest ago (never = first
of all), then the oldest run; each pick makes its owner the most recent. So a user's
500-run sweep and a colleague's single run alternate, slot by slot. A run that asks for
GPUs goes only to a node with that many free devices that meet the request, and holds
them until it ends. Quotas cap what a user or a project has running or handed out at
once (runs, GPU runs) and the GPU-hours it used over the last day: over them a run
waits, queued, with the reason.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

NEVER = (0, 0.0)  # the recency of an owner with no run handed out yet: first in line


@dataclass(frozen=True)
class Needs:
    """The devices a run asks for: `gpus` on one node, each of `gpu_memory_gib` or more."""

    gpus: int = 0
    gpu_memory_gib: float = 0.0

    def met_by(self, gpu_memory_gib: Sequence[float]) -> bool:
        """Whether a node with free devices of these memories (GiB) can take the run."""
        return sum(memory >= self.gpu_memory_gib for memory in gpu_memory_gib) >= self.gpus

    def taken_from(self, gpu_memory_gib: Sequence[float]) -> list[float]:
        """The devices left once the run has taken the smallest ones that meet it.

        >>> Needs(1, 40).taken_from([80.0, 24.0, 48.0])
        [24.0, 80.0]
        """
        left = sorted(gpu_memory_gib)
        for _ in range(self.gpus):
            fitting = next((m for m in left if m >= self.gpu_memory_gib), None)
            if fitting is not None:
                left.remove(fitting)
        return left

    def describe(self) -> str:
        """
        >>> Needs(1, 40).describe()
        '1 GPU with at least 40 GiB'
        >>> Needs(2).describe()
        '2 GPUs'
        """
        gpus = f"{self.gpus} GPU{'s' if self.gpus > 1 else ''}"
        if self.gpu_memory_gib:
            return f"{gpus} with at least {self.gpu_memory_gib:g} GiB"
        return gpus


@dataclass(frozen=True)
class Candidate:
    """A queued run not yet handed to the broker."""

    id: uuid.UUID
    queue: str
    owner: uuid.UUID
    project: uuid.UUID
    created_at: datetime
    priority: int = 0
    needs: Needs = Needs()


@dataclass
class NodeSlots:
    """A live worker node: its free pool processes, the queues it consumes, and the
    memory (GiB) of each of its GPUs no run holds."""

    name: str
    queues: frozenset[str]
    free: int
    free_gpus: list[float] = field(default_factory=list)
    all_gpus: tuple[float, ...] = ()  # free or not: what the node could ever offer

    def takes(self, run: Candidate) -> bool:
        """Whether it can take the run now."""
        return run.queue in self.queues and run.needs.met_by(self.free_gpus)

    def offers(self, run: Candidate) -> bool:
        """Whether it could take the run once its own runs end."""
        return run.queue in self.queues and run.needs.met_by(self.all_gpus)

    def hold(self, needs: Needs) -> None:
        """A run with `needs` now has one of its slots and the GPUs it asked for."""
        self.free -= 1
        self.free_gpus = needs.taken_from(self.free_gpus)


@dataclass(frozen=True)
class Quotas:
    """Caps per user and per project; 0 = no cap. `runs` and `gpu_runs` count what is
    running or handed out at once, `gpu_hours` what ran over the last 24 hours."""

    per_user: int = 0
    per_project: int = 0
    gpu_runs_per_user: int = 0
    gpu_runs_per_project: int = 0
    gpu_hours_per_user: float = 0.0
    gpu_hours_per_project: float = 0.0


@dataclass
class Active:
    """Runs (and GPU runs) running or handed out now, and GPU-hours used over the last
    24 hours, by owner and by project."""

    by_owner: Counter[uuid.UUID] = field(default_factory=Counter)
    by_project: Counter[uuid.UUID] = field(default_factory=Counter)
    gpu_runs_by_owner: Counter[uuid.UUID] = field(default_factory=Counter)
    gpu_runs_by_project: Counter[uuid.UUID] = field(default_factory=Counter)
    gpu_hours_by_owner: dict[uuid.UUID, float] = field(default_factory=dict)
    gpu_hours_by_project: dict[uuid.UUID, float] = field(default_factory=dict)

    def add(self, owner: uuid.UUID, project: uuid.UUID, gpus: int) -> None:
        """One more run of `owner` in `project` running or handed out."""
        self.by_owner[owner] += 1
        self.by_project[project] += 1
        if gpus:
            self.gpu_runs_by_owner[owner] += 1
            self.gpu_runs_by_project[project] += 1

    def add_gpu_hours(self, owner: uuid.UUID, project: uuid.UUID, hours: float) -> None:
        self.gpu_hours_by_owner[owner] = self.gpu_hours_by_owner.get(owner, 0.0) + hours
        self.gpu_hours_by_project[project] = self.gpu_hours_by_project.get(project, 0.0) + hours


@dataclass
class Choice:
    publish: list[Candidate] = field(default_factory=list)
    routed: dict[uuid.UUID, str] = field(default_factory=dict)  # run id → the node it goes to
    waiting: dict[uuid.UUID, str] = field(default_factory=dict)  # run id → why it waits


LineKey = tuple[str, uuid.UUID, uuid.UUID, int, Needs]


def choose(
    candidates: list[Candidate],
    nodes: list[NodeSlots],
    last_use: dict[uuid.UUID, datetime],
    active: Active,
    quotas: Quotas,
    fleet: list[NodeSlots] | None = None,
) -> Choice:
    """Fill each node's free slots with runs it can take, by priority, then fairly
    across owners.

    `fleet`: every live node, its slots free or not (default: `nodes`); a run no node of
    the fleet can take waits for a worker, not for a slot.
    """
    choice = Choice()
    # One line per (queue, owner, project, priority, needs), oldest run first: a pick
    # compares the heads of the lines only, so a pass costs slots x lines, not slots x runs.
    lines: dict[LineKey, deque[Candidate]] = defaultdict(deque)
    for run in sorted(candidates, key=lambda run: run.created_at):
        lines[_line_of(run)].append(run)
    # A counter stands for "now": each pick is more recent than every earlier use.
    recency = {owner: (1, used.timestamp()) for owner, used in last_use.items()}
    tick = 0
    while open_nodes := [node for node in nodes if node.free > 0]:
        heads = [
            line[0]
            for line in lines.values()
            if line
            and _over_quota(line[0], active, quotas) is None
            and any(node.takes(line[0]) for node in open_nodes)
        ]
        if not heads:
            break
        best = min(
            heads, key=lambda run: (-run.priority, recency.get(run.owner, NEVER), run.created_at)
        )
        # Of the nodes that can take it, the one with the fewest GPUs: a cpu run leaves
        # the slots of a GPU node to the runs only that node can take.
        node = min(
            (node for node in open_nodes if node.takes(best)),
            key=lambda node: (len(node.all_gpus), -node.free, node.name),
        )
        tick += 1
        recency[best.owner] = (2, float(tick))
        active.add(best.owner, best.project, best.needs.gpus)
        node.hold(best.needs)
        choice.publish.append(best)
        choice.routed[best.id] = node.name
        lines[_line_of(best)].popleft()
    for line in lines.values():
        if line:  # the runs of a line share queue, owner, project and needs: and so a reason
            why = _why_waiting(line[0], fleet if fleet is not None else nodes, active, quotas)
            choice.waiting.update(dict.fromkeys((run.id for run in line), why))
    return choice


def _line_of(run: Candidate) -> LineKey:
    return (run.queue, run.owner, run.project, run.priority, run.needs)


def _why_waiting(run: Candidate, fleet: list[NodeSlots], active: Active, quotas: Quotas) -> str:
    if not any(run.queue in node.queues for node in fleet):
        return f"waiting: no live worker takes the {run.queue} queue"
    if not any(node.offers(run) for node in fleet):
        return f"waiting: no worker offers {run.needs.describe()} on the {run.queue} queue"
    over = _over_quota(run, active, quotas)
    if over is not None:
        return over
    if run.needs.gpus:
        return f"waiting for a free worker slot with {run.needs.describe()}"
    return "waiting for a free worker slot"


def _over_quota(run: Candidate, active: Active, quotas: Quotas) -> str | None:
    """None if the run may start now, else why not."""
    held = "running or handed out, the quota"
    if quotas.per_user and active.by_owner[run.owner] >= quotas.per_user:
        return (
            f"waiting: its submitter has {quotas.per_user} runs {held} (MEMLAB_QUOTA_RUNS_PER_USER)"
        )
    if quotas.per_project and active.by_project[run.project] >= quotas.per_project:
        return (
            f"waiting: its project has {quotas.per_project} runs {held} "
            "(MEMLAB_QUOTA_RUNS_PER_PROJECT)"
        )
    if not run.needs.gpus:
        return None
    if quotas.gpu_runs_per_user and active.gpu_runs_by_owner[run.owner] >= quotas.gpu_runs_per_user:
        return (
            f"waiting: its submitter has {quotas.gpu_runs_per_user} GPU runs {held} "
            "(MEMLAB_QUOTA_GPU_RUNS_PER_USER)"
        )
    if (
        quotas.gpu_runs_per_project
        and active.gpu_runs_by_project[run.project] >= quotas.gpu_runs_per_project
    ):
        return (
            f"waiting: its project has {quotas.gpu_runs_per_project} GPU runs {held} "
            "(MEMLAB_QUOTA_GPU_RUNS_PER_PROJECT)"
        )
    used = active.gpu_hours_by_owner.get(run.owner, 0.0)
    if quotas.gpu_hours_per_user and used >= quotas.gpu_hours_per_user:
        return (
            f"waiting: its submitter used {used:.1f} GPU-hours in the last 24 hours, the "
            f"quota is {quotas.gpu_hours_per_user:g} (MEMLAB_QUOTA_GPU_HOURS_PER_USER)"
        )
    used = active.gpu_hours_by_project.get(run.project, 0.0)
    if quotas.gpu_hours_per_project and used >= quotas.gpu_hours_per_project:
        return (
            f"waiting: its project used {used:.1f} GPU-hours in the last 24 hours, the "
            f"quota is {quotas.gpu_hours_per_project:g} (MEMLAB_QUOTA_GPU_HOURS_PER_PROJECT)"
        )
    return None
