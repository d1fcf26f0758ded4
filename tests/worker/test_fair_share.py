"""The fair-share order: free slots go to the owner served longest ago, within quotas."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

from worker.fair_share import Active, Candidate, NodeSlots, Quotas, choose

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
    choice = choose(waiting, [], {}, Active(), Quotas(), offered={"cpu"})
    assert choice.waiting[waiting[0].id] == "waiting for a free worker slot"
