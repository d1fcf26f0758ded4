"""The fair-share order: free slots go to the owner served longest ago, within quotas."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from worker.fair_share import Active, Candidate, Needs, NodeSlots, Quotas, choose

START = datetime(2026, 12, 6, tzinfo=UTC)
ADA, BOB = uuid.uuid4(), uuid.uuid4()
LAB, SOLO = uuid.uuid4(), uuid.uuid4()


def runs_of(
    owner: uuid.UUID, count: int, first_minute: int = 0, queue: str = "cpu"
) -> list[Candidate]:
    project = LAB if owner == ADA else SOLO
    return [
        Candidate(uuid.uuid4(), queue, owner, project, START + timedelta(minutes=first_minute + i))
        for i in range(count)
    ]


def node(free: int, *queues: str) -> NodeSlots:
    return NodeSlots("n@box", frozenset(queues or ("cpu",)), free)


def test_a_colleagues_single_run_goes_before_the_rest_of_a_flood() -> None:
    flood = runs_of(ADA, 200)
    single = runs_of(BOB, 1, first_minute=500)  # submitted after the whole flood
    last_use = {ADA: START + timedelta(minutes=1)}  # ada's runs have been going out
    choice = choose(flood + single, [node(1)], last_use, Active(), Quotas())
    assert [run.owner for run in choice.publish] == [BOB]
    assert choice.waiting[flood[0].id] == "waiting for a free worker slot"


def test_slots_alternate_between_owners_oldest_run_first() -> None:
    adas, bobs = runs_of(ADA, 5), runs_of(BOB, 5, first_minute=10)
    choice = choose(adas + bobs, [node(4)], {}, Active(), Quotas())
    assert [run.owner for run in choice.publish] == [ADA, BOB, ADA, BOB]
    assert [run.id for run in choice.publish if run.owner == ADA] == [adas[0].id, adas[1].id]
    assert len(choice.waiting) == 6


def test_a_node_takes_only_its_queues_and_a_queue_nobody_takes_says_so() -> None:
    gpu_runs, cpu_runs = runs_of(ADA, 2, queue="gpu"), runs_of(BOB, 2)
    choice = choose(gpu_runs + cpu_runs, [node(3, "cpu")], {}, Active(), Quotas())
    assert {run.queue for run in choice.publish} == {"cpu"} and len(choice.publish) == 2
    assert choice.waiting[gpu_runs[0].id] == "waiting: no live worker takes the gpu queue"


def test_over_its_quota_a_run_waits_with_the_reason_and_others_go() -> None:
    adas, bobs = runs_of(ADA, 3), runs_of(BOB, 3, first_minute=10)
    active = Active(by_owner=Counter({ADA: 2}), by_project=Counter({LAB: 2}))
    choice = choose(adas + bobs, [node(3)], {}, active, Quotas(per_user=2))
    assert [run.owner for run in choice.publish] == [BOB, BOB]  # bob reaches his quota too
    assert "MEMLAB_QUOTA_RUNS_PER_USER" in choice.waiting[adas[0].id]
    assert "quota" in choice.waiting[bobs[2].id]
    by_project = choose(adas, [node(3)], {}, Active(), Quotas(per_project=1))
    assert len(by_project.publish) == 1
    assert "MEMLAB_QUOTA_RUNS_PER_PROJECT" in by_project.waiting[adas[1].id]


def test_no_free_slot_publishes_nothing() -> None:
    choice = choose(runs_of(ADA, 2), [], {}, Active(), Quotas())
    assert choice.publish == [] and len(choice.waiting) == 2


def test_on_busy_workers_a_run_waits_for_a_slot_not_for_a_worker() -> None:
    waiting = runs_of(ADA, 1)
    choice = choose(waiting, [], {}, Active(), Quotas(), fleet=[node(0)])
    assert choice.waiting[waiting[0].id] == "waiting for a free worker slot"


def gpu_runs_of(
    owner: uuid.UUID, count: int, gpus: int = 1, memory: float = 0.0
) -> list[Candidate]:
    return [replace(run, needs=Needs(gpus, memory)) for run in runs_of(owner, count)]


def gpu_node(name: str, free: int, *memories: float) -> NodeSlots:
    return NodeSlots(name, frozenset({"cpu"}), free, list(memories), memories)


def test_a_higher_priority_goes_first_and_fair_share_holds_within_a_priority() -> None:
    urgent = [replace(run, priority=5) for run in runs_of(ADA, 2, first_minute=100)]
    bobs = runs_of(BOB, 2)  # older, but of priority 0
    last_use = {ADA: START + timedelta(minutes=1)}  # ada was served more recently
    choice = choose(bobs + urgent, [node(3)], last_use, Active(), Quotas())
    assert [run.id for run in choice.publish] == [urgent[0].id, urgent[1].id, bobs[0].id]
    lowered = [replace(run, priority=-1) for run in runs_of(ADA, 1)]
    choice = choose(lowered + runs_of(BOB, 1, first_minute=50), [node(1)], {}, Active(), Quotas())
    assert [run.owner for run in choice.publish] == [BOB]


def test_a_gpu_run_goes_only_to_a_node_whose_gpus_meet_it_and_is_routed_there() -> None:
    big = gpu_runs_of(ADA, 1, memory=40)
    cpu_only, small, large = (
        gpu_node("cpu@a", 2),
        gpu_node("a10@b", 2, 24),
        gpu_node("h100@c", 1, 80),
    )
    choice = choose(big, [cpu_only, small, large], {}, Active(), Quotas())
    assert choice.publish == big and choice.routed == {big[0].id: "h100@c"}
    # Without that node, it waits for a worker that offers it, not for a slot.
    choice = choose(big, [cpu_only, small], {}, Active(), Quotas())
    assert choice.publish == []
    assert choice.waiting[big[0].id] == (
        "waiting: no worker offers 1 GPU with at least 40 GiB on the cpu queue"
    )
    # Busy but able to take it: it waits for a slot; two GPUs need a node with two.
    choice = choose(big, [], {}, Active(), Quotas(), fleet=[large])
    assert choice.waiting[big[0].id] == (
        "waiting for a free worker slot with 1 GPU with at least 40 GiB"
    )
    pair = gpu_runs_of(ADA, 1, gpus=2)
    one_big_gpu, two_small = gpu_node("h100@c", 1, 80), gpu_node("2x@d", 1, 24, 24)
    choice = choose(pair, [one_big_gpu, two_small], {}, Active(), Quotas())
    assert choice.routed == {pair[0].id: "2x@d"}
    # Every run goes to the node whose slot it takes, a cpu run too.
    plain = runs_of(BOB, 1)
    fresh = gpu_node("h100@c", 1, 80)  # `choose` fills the slots of the nodes it is given
    assert choose(plain, [fresh], {}, Active(), Quotas()).routed == {plain[0].id: "h100@c"}


def test_a_gpu_held_by_one_run_is_not_offered_to_the_next() -> None:
    """Four pool processes and one GPU: one GPU run at a time; cpu runs fill the rest."""
    gpu_runs, cpu_runs = gpu_runs_of(ADA, 2), runs_of(BOB, 2, first_minute=10)
    node_of_one_gpu = gpu_node("g@box", 4, 80)
    choice = choose(gpu_runs + cpu_runs, [node_of_one_gpu], {}, Active(), Quotas())
    assert {run.id for run in choice.publish} == {gpu_runs[0].id, *(r.id for r in cpu_runs)}
    assert choice.waiting[gpu_runs[1].id] == "waiting for a free worker slot with 1 GPU"
    assert node_of_one_gpu.free == 1 and node_of_one_gpu.free_gpus == []


def test_gpu_quotas_hold_gpu_runs_back_and_leave_cpu_runs_alone() -> None:
    gpu_runs, cpu_runs = gpu_runs_of(ADA, 3), runs_of(ADA, 1, first_minute=10)

    def nodes() -> list[NodeSlots]:  # afresh for each call: `choose` fills their slots
        return [gpu_node("g@box", 4, 80, 80, 80)]

    choice = choose(gpu_runs + cpu_runs, nodes(), {}, Active(), Quotas(gpu_runs_per_user=1))
    assert {run.id for run in choice.publish} == {gpu_runs[0].id, cpu_runs[0].id}
    assert "MEMLAB_QUOTA_GPU_RUNS_PER_USER" in choice.waiting[gpu_runs[1].id]
    used = Active(gpu_hours_by_project={LAB: 12.5})
    choice = choose(gpu_runs, nodes(), {}, used, Quotas(gpu_hours_per_project=12))
    assert choice.publish == []
    assert choice.waiting[gpu_runs[0].id] == (
        "waiting: its project used 12.5 GPU-hours in the last 24 hours, the quota is 12 "
        "(MEMLAB_QUOTA_GPU_HOURS_PER_PROJECT)"
    )
    under = Active(gpu_hours_by_owner={ADA: 11.9})
    assert len(choose(gpu_runs, nodes(), {}, under, Quotas(gpu_hours_per_user=12)).publish) == 3


def test_a_cpu_run_takes_a_slot_of_a_node_without_gpus_before_one_of_a_gpu_node() -> None:
    """A GPU node sorts first by name; the cpu run still goes to the cpu node, and the
    GPU run, submitted later, finds the GPU node's one slot free."""
    cpu_run, gpu_run = runs_of(ADA, 1), gpu_runs_of(BOB, 1)
    nodes = [gpu_node("a-gpu@box", 1, 80), gpu_node("b-cpu@box", 1)]
    choice = choose(cpu_run + gpu_run, nodes, {}, Active(), Quotas())
    assert choice.routed == {cpu_run[0].id: "b-cpu@box", gpu_run[0].id: "a-gpu@box"}
