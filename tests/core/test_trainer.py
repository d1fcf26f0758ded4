"""The trainer is deterministic, resumes exactly, checkpoints without pickle, stops on request."""

import json

import pytest
import torch
from safetensors import safe_open

from core.data.text import CharVocab
from core.models.transformer import Decoder, DecoderSpec
from core.reporter import InMemoryReporter, RunCancelled
from core.specs import TrainSpec
from core.training.checkpoint import list_checkpoints
from core.training.samplers import TokenStreamSampler
from core.training.trainer import (
    CheckpointMismatchError,
    Trainer,
    TrainingDivergedError,
    TrainOutcome,
)

LINES = [f"<{a}+{b}={a + b}>".ljust(8) + "\n" for a in range(10) for b in range(10)]
VOCAB = CharVocab.from_texts(LINES)


def train(
    reporter: InMemoryReporter,
    steps: int = 40,
    dropout: float = 0.0,
    spec_hash: str | None = None,
    **spec_fields: object,
) -> tuple[Decoder, TrainOutcome]:
    spec = TrainSpec(
        steps=steps,
        batch_size=16,
        lr=3e-3,
        warmup_steps=5,
        eval_every=10,
        checkpoint_every=10,
        device="cpu",
        **spec_fields,
    )
    torch.manual_seed(0)
    model = Decoder(DecoderSpec(n_embd=16, dropout=dropout), vocab_size=VOCAB.size, block_size=9)
    sampler = TokenStreamSampler.from_lines(
        LINES, VOCAB.encode, block_size=9, batch_size=16, passes=4, seed=0
    )
    evaluate = lambda m: {"eval/weight_norm": float(sum(p.norm() for p in m.parameters()))}  # noqa: E731
    trainer = Trainer(
        model,
        spec,
        sampler,
        reporter,
        seed=0,
        device=torch.device("cpu"),
        evaluate=evaluate,
        checkpoint_state={"spec_hash": spec_hash} if spec_hash else None,
    )
    return model, trainer.fit()


def parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_same_seed_gives_identical_weights_and_metrics() -> None:
    first, second = InMemoryReporter(), InMemoryReporter()
    model_a, _ = train(first)
    model_b, _ = train(second)
    for name, tensor in parameters(model_a).items():
        assert torch.equal(tensor, parameters(model_b)[name]), name
    assert first.metrics == second.metrics


def test_training_lowers_the_loss() -> None:
    reporter = InMemoryReporter()
    train(reporter, steps=150)
    losses = [value for _, value in reporter.series("train/loss")]
    assert losses[-1] < 0.6 * losses[0]


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_a_cancelled_run_resumed_from_its_checkpoint_ends_exactly_like_an_uninterrupted_one(
    dropout: float,
) -> None:
    straight = InMemoryReporter()
    model_straight, _ = train(straight, dropout=dropout)

    interrupted = InMemoryReporter(stop_after_checks=23)  # stops before step 24
    with pytest.raises(RunCancelled) as stop:
        train(interrupted, dropout=dropout)
    assert stop.value.step == 23
    assert list_checkpoints(interrupted.checkpoint_dir())[-1].step == 23

    interrupted.stop_after_checks = None
    torch.manual_seed(12345)  # whatever the global RNG did meanwhile, the checkpoint restores it
    model_resumed, outcome = train(interrupted, dropout=dropout)
    assert outcome.resumed_from_step == 23
    for name, tensor in parameters(model_straight).items():
        assert torch.equal(tensor, parameters(model_resumed)[name]), name
    # The resumed run kept the evaluations from before the stop.
    assert [step for step, _ in outcome.eval_history] == [10, 20, 30, 40]


def test_checkpoints_are_safetensors_and_json_and_old_ones_are_pruned() -> None:
    reporter = InMemoryReporter()
    train(reporter)
    kept = list_checkpoints(reporter.checkpoint_dir())
    assert [c.step for c in kept] == [30, 40]
    newest = kept[-1]
    state = json.loads((newest.path / "state.json").read_text())
    assert state["step"] == 40
    with safe_open(str(newest.path / "trainer.safetensors"), framework="pt") as handle:
        keys = set(handle.keys())
    assert "rng.batch_sampler" in keys
    assert any(key.endswith(".exp_avg_sq") for key in keys)
    assert [step for step, _ in reporter.checkpoints] == [10, 20, 30, 40]


def test_best_eval_picks_the_highest_score_and_the_earliest_on_ties() -> None:
    outcome = TrainOutcome(
        steps=3,
        resumed_from_step=0,
        final_train_loss=0.0,
        final_eval={},
        eval_history=[(1, {"s": 0.5}), (2, {"s": 0.9}), (3, {"s": 0.9})],
        wall_seconds=0.0,
    )
    assert outcome.best_eval("s") == (2, {"s": 0.9})
    assert outcome.best_eval("missing") is None


def test_a_checkpoint_of_another_spec_is_not_resumed_from() -> None:
    reporter = InMemoryReporter()
    train(reporter, spec_hash="a" * 64)
    with pytest.raises(CheckpointMismatchError, match="refusing to resume"):
        train(reporter, spec_hash="b" * 64)


def test_a_nan_loss_stops_training_with_advice() -> None:
    spec = TrainSpec(steps=5, batch_size=4, warmup_steps=0, device="cpu")
    model = Decoder(DecoderSpec(n_embd=8), vocab_size=VOCAB.size, block_size=9)
    with torch.no_grad():
        model.ln_out.weight.fill_(float("nan"))
    sampler = TokenStreamSampler.from_lines(
        LINES, VOCAB.encode, block_size=9, batch_size=4, passes=2, seed=0
    )
    trainer = Trainer(model, spec, sampler, InMemoryReporter(), seed=0, device=torch.device("cpu"))
    with pytest.raises(TrainingDivergedError, match=r"diverged at step 0.*lower train\.lr"):
        trainer.fit()
