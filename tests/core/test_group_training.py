"""Runs of one sweep trained as one batched ensemble report what each would alone.

Float tolerance: the kinds train float32 models, and the ensemble computes each member's
forward and backward with batched kernels (bmm, vmap) whose summation order differs from
the solo model's, so numbers agree to float32 rounding carried through a few AdamW steps,
not bit for bit: floats are compared with rtol 1e-4 (and atol 1e-6 for values near 0).
Everything else (steps, counts, keys, strings, which metrics are logged when) is equal.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from core.batching import batch_key, batch_refusal, training_memory_bytes
from core.built import Built
from core.catalog import all_kinds, build_target, get_kind, parse_spec
from core.prepared import Prepared
from core.registry import ExperimentKind
from core.reporter import InMemoryReporter, RunCancelled
from core.specs import TrainedSpec
from core.training import group
from core.training.checkpoint import MODEL_FILE, STATE_FILE, TRAINER_FILE, latest_checkpoint
from core.training.group import GroupResult, run_group
from core.training.trainer import IGNORE_INDEX, TrainingDivergedError

RTOL, ATOL = 1e-4, 1e-6
BATCHABLE_KINDS = sorted(
    name
    for name, kind in all_kinds().items()
    if kind.trains and batch_refusal(kind.spec_class.smoke_spec()) is None
)
# Trained kinds that train alone by design, each with the reason: a new one must be named
# here, or the test below fails.
SOLO_KINDS = {
    # Two stages in one run; the second (GRPO) samples answers from the policy it trains.
    "schema_linking": "registers no prepare()",
}
# What differs between two runs of one spec by design: the clock.
_CLOCKS = {"wall_seconds"}


def smoke(kind: str, **train: Any) -> TrainedSpec:
    spec = all_kinds()[kind].spec_class.smoke_spec()
    assert isinstance(spec, TrainedSpec)
    return with_fields(spec, train=train) if train else spec


def with_fields(spec: TrainedSpec, *, seed: int | None = None, **nested: Any) -> TrainedSpec:
    fields = spec.model_dump(mode="json")
    if seed is not None:
        fields["seed"] = seed
    for name, values in nested.items():
        fields[name] = {**fields[name], **values}
    return type(spec).model_validate(fields)


def sweep(base: TrainedSpec) -> list[TrainedSpec]:
    """Three members: two seeds (or, for a kind that does not batch seeds, a third
    learning rate), and the first seed at another peak and floor."""
    lr, min_lr = base.train.lr, base.train.min_lr
    if "seed" in base.batch_fields:
        second = with_fields(base, seed=same_shape_seed(base))
    else:
        second = with_fields(base, train={"lr": lr / 2, "min_lr": min_lr / 4})
    return [base, second, with_fields(base, train={"lr": 2 * lr, "min_lr": min_lr / 2})]


def parameter_shapes(spec: TrainedSpec) -> list[tuple[str, torch.Size]]:
    build = get_kind(spec.kind).build
    assert build is not None
    return [(name, p.shape) for name, p in build(spec).make_model().named_parameters()]


def same_shape_seed(base: TrainedSpec) -> int:
    """The next seed whose model has the base seed's shapes: a kind's vocabulary may
    depend on the seed (fictional_qa's does), and only models alike in shape batch."""
    shapes = parameter_shapes(base)
    return next(
        seed
        for seed in range(base.seed + 1, base.seed + 50)
        if parameter_shapes(with_fields(base, seed=seed)) == shapes
    )


def assert_close(batched: Any, alone: Any, where: str = "") -> None:
    """Equal structure and non-floats, floats within RTOL/ATOL; clocks ignored."""
    if isinstance(alone, dict):
        assert isinstance(batched, dict) and batched.keys() == alone.keys(), where
        for key in alone:
            if key not in _CLOCKS:
                assert_close(batched[key], alone[key], f"{where}.{key}")
    elif isinstance(alone, list | tuple):
        assert isinstance(batched, list | tuple) and len(batched) == len(alone), where
        for index, (b, a) in enumerate(zip(batched, alone, strict=True)):
            assert_close(b, a, f"{where}[{index}]")
    elif isinstance(alone, float) and not isinstance(batched, bool):
        assert isinstance(batched, float), where
        assert math.isclose(batched, alone, rel_tol=RTOL, abs_tol=ATOL) or (
            math.isnan(batched) and math.isnan(alone)
        ), f"{where}: {batched} != {alone}"
    else:
        assert batched == alone, where


def assert_reports_alike(batched: InMemoryReporter, alone: InMemoryReporter) -> None:
    """The same metrics at the same steps (values close), progress and checkpoint steps."""
    assert [(s, k) for s, k, _ in batched.metrics] == [(s, k) for s, k, _ in alone.metrics]
    assert_close([v for _, _, v in batched.metrics], [v for _, _, v in alone.metrics], "metrics")
    assert batched.progress_log == alone.progress_log
    assert [step for step, _ in batched.checkpoints] == [step for step, _ in alone.checkpoints]


def solo(spec: TrainedSpec) -> tuple[dict[str, Any], InMemoryReporter]:
    reporter = InMemoryReporter()
    return get_kind(spec.kind).run(spec, reporter), reporter


@pytest.mark.parametrize("kind", BATCHABLE_KINDS)
def test_every_member_of_a_group_equals_its_solo_run(kind: str) -> None:
    specs = sweep(smoke(kind))
    reporters = [InMemoryReporter() for _ in specs]
    results = run_group(list(zip(specs, reporters, strict=True)))
    for spec, reporter, outcome in zip(specs, reporters, results, strict=True):
        assert outcome.error is None and outcome.batched
        alone_result, alone_reporter = solo(spec)
        assert_close(outcome.result, alone_result, kind)
        assert_reports_alike(reporter, alone_reporter)


def test_every_trained_kind_is_batchable_but_those_named_solo() -> None:
    # Else the equality above would quietly cover fewer kinds.
    trained = sorted(name for name, kind in all_kinds().items() if kind.trains)
    assert trained == sorted([*BATCHABLE_KINDS, *SOLO_KINDS])
    for name, why in SOLO_KINDS.items():
        refusal = batch_refusal(all_kinds()[name].spec_class.smoke_spec())
        assert refusal is not None and why in refusal, refusal


KIND = "associative_recall"


def few_steps(**train: Any) -> TrainedSpec:
    return smoke(KIND, steps=6, eval_every=2, checkpoint_every=2, **train)


def test_a_diverging_member_fails_alone_and_the_others_are_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    specs = sweep(few_steps())
    diverging_seed = specs[1].seed

    def nothing_to_predict(built: Built) -> Built:
        def sample(rng: torch.Generator, device: torch.device) -> tuple[torch.Tensor, ...]:
            inputs, targets = built.sample_batch(rng, device)
            return inputs, torch.full_like(targets, IGNORE_INDEX)  # loss 0/0 = NaN

        return dataclasses.replace(built, sample_batch=sample)

    kind = get_kind(KIND)
    assert kind.prepare is not None
    prepare = kind.prepare

    def prepare_with_a_nan(spec: TrainedSpec) -> Prepared:
        prepared = prepare(spec)
        if spec.seed == diverging_seed:
            return dataclasses.replace(prepared, built=nothing_to_predict(prepared.built))
        return prepared

    patched = dataclasses.replace(kind, prepare=prepare_with_a_nan)

    def lookup(name: str) -> ExperimentKind[Any]:
        return patched if name == KIND else get_kind(name)

    monkeypatch.setattr(group, "get_kind", lookup)
    reporters = [InMemoryReporter() for _ in specs]
    results = run_group(list(zip(specs, reporters, strict=True)))
    assert isinstance(results[1].error, TrainingDivergedError)
    assert "diverged at step 0" in str(results[1].error)
    for index in (0, 2):
        alone_result, alone_reporter = solo(specs[index])
        assert_close(results[index].result, alone_result)
        assert_reports_alike(reporters[index], alone_reporter)


def test_a_cancelled_member_is_checkpointed_and_dropped_while_the_others_go_on() -> None:
    specs = sweep(few_steps())
    reporters = [InMemoryReporter(), InMemoryReporter(stop_after_checks=3), InMemoryReporter()]
    results = run_group(list(zip(specs, reporters, strict=True)))
    cancelled = results[1]
    assert isinstance(cancelled.error, RunCancelled) and cancelled.error.step == 3
    assert cancelled.result is None and cancelled.batched
    assert reporters[1].checkpoints[-1][0] == 3
    for index in (0, 2):
        alone_result, alone_reporter = solo(specs[index])
        assert_close(results[index].result, alone_result)
        assert_reports_alike(reporters[index], alone_reporter)


def test_each_member_s_end_is_told_when_it_happens_not_when_the_group_ends() -> None:
    specs = sweep(few_steps())
    reporters = [InMemoryReporter(), InMemoryReporter(stop_after_checks=3), InMemoryReporter()]
    told: list[tuple[int, bool, int]] = []  # (member, failed, steps the others had logged)

    def on_end(index: int, outcome: GroupResult) -> None:
        logged = len(reporters[0].series("train/loss"))
        told.append((index, outcome.error is not None, logged))

    results = run_group(list(zip(specs, reporters, strict=True)), on_end=on_end)
    assert [index for index, _, _ in told] == [1, 0, 2]
    final = len(reporters[0].series("train/loss"))
    assert told[0][1] and told[0][2] < final  # the cancelled one, mid-training
    assert [r.error is None for r in results] == [True, False, True]


def test_a_cancelled_member_resumes_alone_from_its_group_checkpoint() -> None:
    # Its checkpoint is a solo Trainer's: the kind's own run picks it up at step 3.
    specs = sweep(few_steps())
    reporters = [InMemoryReporter(), InMemoryReporter(stop_after_checks=3), InMemoryReporter()]
    run_group(list(zip(specs, reporters, strict=True)))
    resumed = InMemoryReporter(directory=reporters[1].directory)
    result = get_kind(KIND).run(specs[1], resumed)
    assert result["training"]["resumed_from_step"] == 3
    alone_result, _ = solo(specs[1])
    alone_result["training"]["resumed_from_step"] = 3
    assert_close(result, alone_result)


def test_a_resumed_group_ends_bit_identical_to_an_uninterrupted_one() -> None:
    specs = sweep(few_steps())
    whole = [InMemoryReporter() for _ in specs]
    uninterrupted = run_group(list(zip(specs, whole, strict=True)))
    stopped = [InMemoryReporter(stop_after_checks=3) for _ in specs]
    cancelled = run_group(list(zip(specs, stopped, strict=True)))
    assert all(isinstance(r.error, RunCancelled) for r in cancelled)
    again = [InMemoryReporter(directory=r.directory) for r in stopped]
    resumed = run_group(list(zip(specs, again, strict=True)))
    for first, second, a, b in zip(uninterrupted, resumed, whole, again, strict=True):
        assert second.result is not None and first.result is not None
        assert second.result["training"]["resumed_from_step"] == 3
        assert _without_clocks(second.result) == _without_clocks(first.result)
        final_a, final_b = (
            latest_checkpoint(a.checkpoint_dir()),
            latest_checkpoint(b.checkpoint_dir()),
        )
        assert final_a is not None and final_b is not None and final_a.step == final_b.step == 6
        for name in (MODEL_FILE, TRAINER_FILE):
            tensors_a, tensors_b = load_file(final_a.path / name), load_file(final_b.path / name)
            assert tensors_a.keys() == tensors_b.keys()
            assert all(torch.equal(tensors_a[k], tensors_b[k]) for k in tensors_a)
        assert b.series("train/loss") == [p for p in a.series("train/loss") if p[0] > 3]


def _without_clocks(result: dict[str, Any]) -> dict[str, Any]:
    training = {
        k: v
        for k, v in result["training"].items()
        if k not in {"wall_seconds", "resumed_from_step"}
    }
    return {**result, "training": training}


def test_a_members_checkpoint_is_a_solo_runs_checkpoint() -> None:
    specs = sweep(few_steps())
    reporters = [InMemoryReporter() for _ in specs]
    run_group(list(zip(specs, reporters, strict=True)))
    _, alone = solo(specs[2])
    mine, theirs = (
        latest_checkpoint(reporters[2].checkpoint_dir()),
        latest_checkpoint(alone.checkpoint_dir()),
    )
    assert mine is not None and theirs is not None and mine.step == theirs.step
    for name in (MODEL_FILE, TRAINER_FILE):
        batched, single = load_file(mine.path / name), load_file(theirs.path / name)
        assert batched.keys() == single.keys(), name
        for key in single:
            assert batched[key].dtype == single[key].dtype, key
            if key.startswith("rng."):  # generator states: exactly the solo run's
                assert torch.equal(batched[key], single[key]), key
            else:
                # Within 1e-3 of the tensor's largest entry: an attention key's bias has no
                # true gradient (softmax ignores a shift shared by every key), so AdamW
                # normalises float32 rounding noise into steps of full size there.
                scale = float(single[key].abs().max())
                torch.testing.assert_close(batched[key], single[key], rtol=RTOL, atol=1e-3 * scale)
    state = json.loads(Path(mine.path / STATE_FILE).read_text())
    single_state = json.loads(Path(theirs.path / STATE_FILE).read_text())
    assert_close(state, single_state)
    target = build_target(specs[2], reporters[2].checkpoint_dir(), torch.device("cpu"))
    assert target.model is not None and target.n_parameters > 0


def test_members_whose_models_differ_in_shape_train_apart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # fictional_qa's vocabulary depends on the seed: seeds 0 and 1 build models of other
    # shapes, so each is a partition of one and trains through Trainer, as it would alone.
    # (Its spec keeps seeds out of its batch fields, so no sweep groups them; a kind that
    # did not would still be trained right.)
    monkeypatch.setattr(type(smoke("fictional_qa")), "batch_fields", TrainedSpec.batch_fields)
    base = smoke("fictional_qa")
    specs = [base, with_fields(base, seed=1), with_fields(base, seed=same_shape_seed(base))]
    assert parameter_shapes(specs[0]) != parameter_shapes(specs[1])
    reporters = [InMemoryReporter() for _ in specs]
    results = run_group(list(zip(specs, reporters, strict=True)))
    assert [r.batched for r in results] == [True, False, True]
    alone_result, alone_reporter = solo(specs[1])
    assert_close(results[1].result, alone_result)
    assert_reports_alike(reporters[1], alone_reporter)


def test_a_group_of_one_trains_alone_and_specs_of_two_keys_are_refused() -> None:
    base = few_steps()
    lone = run_group([(base, InMemoryReporter())])
    assert lone == [GroupResult(lone[0].result, None, batched=False)]
    other_width = with_fields(base, seed=1, model={"width": 24})
    assert batch_key(other_width) != batch_key(base)
    with pytest.raises(ValueError, match="batch keys"):
        run_group([(base, InMemoryReporter()), (other_width, InMemoryReporter())])


def test_a_member_whose_prepare_fails_fails_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    specs = sweep(few_steps())
    kind = get_kind(KIND)
    assert kind.prepare is not None
    prepare = kind.prepare

    def failing_for_seed_1(spec: TrainedSpec) -> Prepared:
        if spec.seed == 1:
            raise OSError("the data is gone")
        return prepare(spec)

    patched = dataclasses.replace(kind, prepare=failing_for_seed_1)
    monkeypatch.setattr(group, "get_kind", lambda name: patched)
    results = run_group([(spec, InMemoryReporter()) for spec in specs])
    assert isinstance(results[1].error, OSError)
    assert results[0].batched and results[2].batched and results[0].result is not None


def test_a_fatal_error_from_a_reporter_leaves_the_group_at_once() -> None:
    class WorkerLostRun(Exception):
        pass

    class LosingReporter(InMemoryReporter):
        def should_stop(self) -> bool:
            if super().should_stop():
                raise WorkerLostRun
            return False

    specs = sweep(few_steps())
    reporters = [InMemoryReporter(), LosingReporter(stop_after_checks=2), InMemoryReporter()]
    with pytest.raises(WorkerLostRun):
        run_group(list(zip(specs, reporters, strict=True)), fatal=(WorkerLostRun,))


def test_a_kind_whose_seed_draws_its_vocabulary_does_not_batch_seeds() -> None:
    base = smoke("fictional_qa")
    assert batch_key(with_fields(base, seed=1)) != batch_key(base)
    assert batch_key(with_fields(base, train={"lr": 3e-3})) == batch_key(base)


def test_the_batch_key_ignores_exactly_seed_lr_and_min_lr() -> None:
    base = few_steps()
    assert TrainedSpec.batch_fields == ("seed", "train.lr", "train.min_lr")
    alike = [
        with_fields(base, seed=7),
        with_fields(base, train={"lr": 3e-3, "min_lr": 1e-5}),
    ]
    assert {batch_key(spec) for spec in alike} == {batch_key(base)}
    differing = [
        with_fields(base, train={"checkpoint_every": 3}),
        with_fields(base, train={"device": "cpu"}),
        with_fields(base, train={"steps": 7}),
        type(base).model_validate({**base.model_dump(mode="json"), "max_wall_s": 60}),
        type(base).model_validate(
            {**base.model_dump(mode="json"), "probes": [{"kind": "loss_mia"}]}
        ),
        type(base).model_validate({**base.model_dump(mode="json"), "num_kv_pairs": 3}),
    ]
    keys = [batch_key(spec) for spec in differing]
    assert batch_key(base) not in keys and len(set(keys)) == len(keys)


def test_dropout_is_refused_with_its_reason_and_trains_alone() -> None:
    spec = with_fields(few_steps(), model={"dropout": 0.1})
    reason = batch_refusal(spec)
    assert reason is not None and "model.dropout" in reason and "dropout mask" in reason
    results = run_group(
        [(spec, InMemoryReporter()), (with_fields(spec, seed=1), InMemoryReporter())]
    )
    assert [r.batched for r in results] == [False, False]
    assert all(r.result is not None for r in results)


def test_rrelu_is_refused_like_dropout_and_trains_alone() -> None:
    # RReLU draws random slopes in training; vmap over it raised inside a group.
    spec = parse_spec(
        {
            "kind": "kg_memorization",
            "graph": {"n_concepts": 40},
            "model": {"width": 8, "activation": "rrelu"},
            "train": {"steps": 3, "eval_every": 3, "checkpoint_every": 3},
        }
    )
    reason = batch_refusal(spec)
    assert reason is not None and "model.activation" in reason and "rrelu" in reason
    results = run_group(
        [(spec, InMemoryReporter()), (with_fields(spec, seed=1), InMemoryReporter())]
    )
    assert [r.batched for r in results] == [False, False]
    assert all(r.result is not None for r in results)


def test_training_memory_is_estimated_from_the_spec_alone() -> None:
    spec = few_steps()
    expected = 16 * spec.parameter_count() + 4 * spec.train.batch_size * spec.seq_len * 256
    assert training_memory_bytes(spec) == expected
