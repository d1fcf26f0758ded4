"""The user journeys every deployment mode must support, written once."""

from __future__ import annotations

from typing import Any

from memlab_client.sdk import TERMINAL, MemlabClient
from tests.conftest import tiny_capacity_spec

E2E_SPEC = tiny_capacity_spec(
    task="joint", train={"steps": 120, "eval_every": 40, "checkpoint_every": 60}
)


def submit_follow_and_check(client: MemlabClient) -> str:
    """POST a short capacity_tradeoff, follow its events to the end, check what was stored."""
    experiment = client.submit(E2E_SPEC, name="e2e", tags=["e2e"])
    events = list(client.events(experiment["id"]))
    names = [name for name, _ in events]
    statuses = [data["status"] for name, data in events if name == "status"]
    assert statuses[-1] == "succeeded", events
    assert names[-1] == "end"
    assert statuses[0] in ("queued", "running") and "running" in statuses, events
    assert "progress" in names, events

    final = client.get(experiment["id"])
    assert final["status"] == "succeeded", final.get("error")
    result = final["result"]
    assert result["training"]["steps"] == 120
    assert set(result["final"]) >= {"arithmetic_held_out", "arithmetic_seen", "facts"}

    metrics = client.metrics(experiment["id"])["series"]
    assert metrics["eval/facts"]["steps"] == [40, 80, 120]
    assert metrics["train/loss"]["steps"][-1] == 120
    assert client.list(tag="e2e")["items"][0]["id"] == experiment["id"]
    return str(experiment["id"])


def cancel_while_running(client: MemlabClient) -> None:
    """A long run, cancelled once it runs, ends `cancelled`; cancelling again is a 409."""
    long_spec = tiny_capacity_spec(train={"steps": 1_000_000, "checkpoint_every": 1_000_000})
    experiment = client.submit(long_spec)
    for name, data in client.events(experiment["id"]):
        if data["status"] == "running":
            client.cancel(experiment["id"])
            break
        assert name != "end", data
    final = client.wait(experiment["id"])
    assert final["status"] == "cancelled", final
    assert final["progress"] < 1.0
    try:
        client.cancel(experiment["id"])
    except Exception as error:  # MemlabError
        assert getattr(error, "status", None) == 409
    else:
        raise AssertionError("cancelling a cancelled run must be a 409")


PROBED_SPEC = tiny_capacity_spec(
    task="facts",
    n_facts=20,
    train={"steps": 150, "eval_every": 150, "checkpoint_every": 150, "batch_size": 64},
    probes=[{"kind": "loss_mia", "bootstrap_rounds": 100}, {"kind": "exact_recall"}],
)


def probes_run_after_training_and_on_request(client: MemlabClient) -> str:
    """An experiment that lists probes gets them run when it succeeds; a probe POSTed
    afterwards runs through the same queue and worker. Returns the experiment id."""
    from tests.e2e.conftest import wait_for

    experiment = client.submit(PROBED_SPEC)
    assert client.wait(experiment["id"])["status"] == "succeeded"

    def auto_probes_done() -> list[dict[str, object]] | None:
        items = client.list_probes(experiment["id"])["items"]
        done = len(items) == 2 and all(p["status"] in TERMINAL for p in items)
        return items if done else None

    auto = {p["kind"]: p for p in wait_for(auto_probes_done, 120, "the auto probes to end")}
    assert {p["status"] for p in auto.values()} == {"succeeded"}, auto
    assert "auto-probe" in auto["loss_mia"]["tags"]
    loss = auto["loss_mia"]["result"]
    assert loss["experiment_id"] == experiment["id"]
    assert 0.0 <= loss["attack"]["auc"] <= 1.0
    # Balanced: as many members as there are held-out facts (those the vocabulary can spell).
    assert loss["blind_baseline"]["n_members"] == loss["attack"]["n_members"] > 10
    assert loss["attack"]["n_members"] == loss["attack"]["n_non_members"]
    assert "TPR@0%FPR" in [t["label"] for t in loss["attack"]["tpr_at_low_fpr"]]
    assert auto["exact_recall"]["result"]["n_items"] == 20

    requested = client.probe(experiment["id"], {"kind": "min_k_mia", "bootstrap_rounds": 50})
    final = client.wait_probe(requested["id"])
    assert final["status"] == "succeeded", final["error"]
    assert [row["k"] for row in final["result"]["k_sweep"]][:2] == [0.05, 0.1]
    return str(experiment["id"])


SWEEP_BASE = tiny_capacity_spec(
    task="facts",
    n_facts=20,
    train={"steps": 60, "eval_every": 30, "checkpoint_every": 30, "batch_size": 32},
    probes=[{"kind": "exact_recall"}],
)


def a_sweep_runs_as_one_batched_group(client: MemlabClient) -> None:
    """Two learning rates × two seeds: four children, one batched group; each child has its
    own metrics, checkpoints and probe, and equals the same spec submitted alone."""
    from tests.e2e.conftest import wait_for

    body = {"base": SWEEP_BASE, "axes": {"train.lr": [0.01, 0.003]}, "seeds": 2, "name": "e2e"}
    sweep = client.sweep(body)
    assert sweep["n_runs"] == 4 and sweep["n_groups"] == 1
    final = client.wait_sweep(sweep["id"], timeout=240)
    assert final["status"] == "succeeded", final
    children = client.list(sweep_id=sweep["id"])["items"]
    assert [c["sweep_cell"]["train.lr"] for c in children] == [0.01, 0.01, 0.003, 0.003]
    assert all(c["batched"] is True for c in children)
    assert len({c["group_id"] for c in children}) == 1
    for child in children:
        series = client.metrics(child["id"])["series"]
        assert series["eval/facts"]["steps"] == [30, 60]
        assert {a["step"] for a in client.artifacts(child["id"])} == {30, 60}

    def probes_done() -> list[dict[str, object]] | None:
        found = [client.list_probes(c["id"])["items"] for c in children]
        ended = all(len(p) == 1 and p[0]["status"] in TERMINAL for p in found)
        return [p[0] for p in found] if ended else None

    probes = wait_for(probes_done, 120, "each child's probe")
    assert {p["status"] for p in probes} == {"succeeded"}, probes

    # The last child (lr 0.003, seed 1), trained alone, ends where it ended batched: the
    # float32 sums of a batched matmul differ from a lone one in the last bits only.
    alone = client.wait(client.submit(children[-1]["spec"])["id"])
    assert alone["status"] == "succeeded" and alone["batched"] is None
    batched_loss = client.metrics(children[-1]["id"])["series"]["train/loss"]["values"]
    alone_loss = client.metrics(alone["id"])["series"]["train/loss"]["values"]
    assert len(batched_loss) == len(alone_loss)
    for ours, theirs in zip(batched_loss, alone_loss, strict=True):
        assert abs(ours - theirs) <= 1e-4 * abs(theirs)
    assert alone["result"]["final"] == children[-1]["result"]["final"]


def one_child_and_then_a_whole_sweep_are_cancelled(client: MemlabClient) -> None:
    """Cancelling one running child drops it from its group while the others train on;
    cancelling the sweep then stops the rest."""
    from tests.e2e.conftest import wait_for

    base = tiny_capacity_spec(train={"steps": 1_000_000, "checkpoint_every": 1_000_000})
    sweep = client.sweep({"base": base, "seeds": 3})
    assert sweep["n_groups"] == 1

    def all_running() -> list[dict[str, object]] | None:
        items = client.list(sweep_id=sweep["id"])["items"]
        return items if all(c["status"] == "running" for c in items) else None

    children = wait_for(all_running, 120, "the group's members to run")
    client.cancel(str(children[0]["id"]))
    stopped = client.wait(str(children[0]["id"]))
    assert stopped["status"] == "cancelled"
    others = [client.get(str(c["id"])) for c in children[1:]]
    assert {o["status"] for o in others} == {"running"}
    progress = [o["progress"] for o in others]
    wait_for(
        lambda: all(
            client.get(str(c["id"]))["progress"] > p
            for c, p in zip(children[1:], progress, strict=True)
        ),
        60,
        "the others to train on",
    )
    client.cancel_sweep(sweep["id"])
    final = client.wait_sweep(sweep["id"], timeout=60)
    assert final["status"] == "cancelled" and final["counts"]["cancelled"] == 3


def theory_kinds_run_and_their_samples_are_probed(client: MemlabClient) -> None:
    """Each kind that computes without training runs its smoke spec through the queue and
    a worker, and returns curves with theory beside them; the diffusion run's saved
    samples are what `generation_copy` then reads."""
    from core.catalog import all_kinds

    finished = {}
    for kind in ("attention_memorization", "associative_memory", "memorization_tradeoff"):
        smoke = all_kinds()[kind].spec_class.smoke_fields
        experiment = client.submit({"kind": kind, **smoke}, tags=["theory"])
        final = client.wait(experiment["id"])
        assert final["status"] == "succeeded", final["error"]
        curves = final["result"]["curves"]
        assert curves and all(len(c["mean"]) == len(c["x"]) for c in curves)
        assert any(c["theory"] is not None for c in curves), kind
        finished[kind] = final

    diffusion = finished["associative_memory"]
    stored = {a["path"].rsplit("/", 1)[-1] for a in client.artifacts(diffusion["id"])}
    assert "samples.safetensors" in stored, stored
    probe = client.wait_probe(client.probe(diffusion["id"], {"kind": "generation_copy"})["id"])
    assert probe["status"] == "succeeded", probe["error"]
    fractions = probe["result"]["fractions"]
    assert set(fractions) == {"memorized", "spurious", "generalized"}
    assert abs(sum(fractions.values()) - 1.0) < 1e-9
    assert probe["result"]["n_samples"] == smoke_samples(all_kinds()["associative_memory"])


def smoke_samples(kind: Any) -> int:
    """How many samples the diffusion smoke run generates per K."""
    return int(kind.spec_class.smoke_spec().diffusion.samples)


def feedback_kinds_run_and_the_policy_is_probed(client: MemlabClient) -> None:
    """The two kinds taught by feedback run their smoke specs through the queue and a
    worker: interactive_teaching returns per-task curves with their bounds beside them;
    schema_linking trains both stages (SFT, then GRPO), reports each stage's held-out
    scores, and its final policy is probed for memorization of the training schemas."""
    from core.catalog import all_kinds

    kinds = all_kinds()
    teaching = client.submit({"kind": "interactive_teaching", **_smoke("interactive_teaching")})
    linking = client.submit({"kind": "schema_linking", **_smoke("schema_linking")})

    taught = client.wait(teaching["id"])
    assert taught["status"] == "succeeded", taught["error"]
    curves = {c["name"]: c for c in taught["result"]["curves"]}
    for task in ("vocabulary", "grammar"):
        unseen = curves[f"{task}_unseen_accuracy"]
        assert unseen["theory"] is not None and len(unseen["mean"]) == len(unseen["x"])
        assert f"{task}_seen_retention" in curves

    linked = client.wait(linking["id"])
    assert linked["status"] == "succeeded", linked["error"]
    spec = kinds["schema_linking"].spec_class.smoke_spec()
    result = linked["result"]
    assert result["training"]["steps"] == spec.train.steps + spec.grpo.train.steps
    for stage in ("sft", "grpo"):
        assert set(result[stage]["held_out"]["tables"]) >= {"exact", "filter", "precision"}

    probes = [
        client.probe(linking["id"], {"kind": "exact_recall"}),
        client.probe(linking["id"], {"kind": "loss_mia", "bootstrap_rounds": 50}),
    ]
    recall, membership = (client.wait_probe(p["id"]) for p in probes)
    assert recall["status"] == "succeeded", recall["error"]
    assert recall["result"]["n_items"] == result["train_questions"]
    assert membership["status"] == "succeeded", membership["error"]
    attack = membership["result"]["attack"]
    assert attack["n_members"] == attack["n_non_members"] == result["held_out_questions"]


def cross_modal_runs_and_is_probed_in_both_modalities(client: MemlabClient) -> None:
    """cross_modal's smoke spec trains through the queue and reports both directions with
    the alignment apart from the gap; exact_recall and loss_mia then run on its members,
    which hold items of both modalities (names and images)."""
    experiment = client.submit({"kind": "cross_modal", **_smoke("cross_modal")})
    finished = client.wait(experiment["id"])
    assert finished["status"] == "succeeded", finished["error"]
    result = finished["result"]
    for direction in ("text_to_image", "image_to_text"):
        summary = result[direction]
        # A gap is given only with an alignment at the threshold, else a reason is.
        assert (summary["gap"] is None) == (summary["gap_withheld"] is not None)
        assert (summary["gap"] is None) == (summary["alignment_accuracy"] < 0.9)

    probes = [
        client.probe(experiment["id"], {"kind": "exact_recall", "list_items": 10_000}),
        client.probe(experiment["id"], {"kind": "loss_mia", "bootstrap_rounds": 50}),
    ]
    recall, membership = (client.wait_probe(p["id"]) for p in probes)
    assert recall["status"] == "succeeded", recall["error"]
    assert recall["result"]["n_items"] == result["train_items"]
    subjects = {item["text"].split()[0][:3] == "img" for item in recall["result"]["items"]}
    assert subjects == {True, False}, "members hold image and text items"
    assert membership["status"] == "succeeded", membership["error"]
    assert membership["result"]["attack"]["n_members"] > 0


SHADOW_TARGET = {
    "kind": "kg_memorization",
    "held_out_fraction": 0.5,
    "graph": {"n_concepts": 40},
    "model": {"width": 16},
    "train": {"steps": 20, "batch_size": 16, "eval_every": 10},
}


def shadow_probes_train_their_models_once(client: MemlabClient) -> None:
    """lira trains 4 shadow models of its target as a sweep and runs when they end; a
    counterfactual probe on the same pool reuses them and runs at once."""
    target = client.wait(client.submit(SHADOW_TARGET)["id"])
    assert target["status"] == "succeeded", target["error"]
    lira = client.probe(target["id"], {"kind": "lira", "shadows": 4, "bootstrap_rounds": 50})
    lira_done = client.wait_probe(lira["id"])
    assert lira_done["status"] == "succeeded", lira_done["error"]
    sweep = client.get_sweep(lira["shadow_sweep_id"])
    assert sweep["counts"]["succeeded"] == 4 and sweep["n_groups"] == 1
    shadows = {child["id"] for child in client.sweep_experiments(sweep["id"])}
    assert set(lira_done["result"]["shadow_experiment_ids"]) == shadows

    counterfactual = client.probe(target["id"], {"kind": "counterfactual", "shadows": 4})
    assert counterfactual["shadow_sweep_id"] == sweep["id"]
    counterfactual_done = client.wait_probe(counterfactual["id"])
    assert counterfactual_done["status"] == "succeeded", counterfactual_done["error"]
    assert set(counterfactual_done["result"]["shadow_experiment_ids"]) == shadows
    assert client.get_sweep(sweep["id"])["counts"]["succeeded"] == 4  # none trained again


def _smoke(kind: str) -> dict[str, Any]:
    from core.catalog import all_kinds

    return dict(all_kinds()[kind].spec_class.smoke_fields)
