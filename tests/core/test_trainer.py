"""The trainer is deterministic, resumes exactly, checkpoints without pickle, stops on request."""

import json
import math

import pytest
import torch
from safetensors import safe_open

from core.data.text import CharVocab
from core.models.sequence_model import SequenceModel, SequenceModelSpec
from core.models.transformer import Decoder, DecoderSpec
from core.reporter import InMemoryReporter, RunCancelled
from core.specs import TrainSpec, WeightDecayOn
from core.training.checkpoint import list_checkpoints
from core.training.samplers import TokenStreamSampler
from core.training.trainer import (
    CheckpointMismatchError,
    Trainer,
    TrainingDivergedError,
    TrainOutcome,
)
from core.training.weight_decay import decayed_parameter_names

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


@pytest.mark.parametrize(
    ("dropout", "decay"),
    [(0.0, {}), (0.2, {}), (0.0, {"weight_decay": 0.1, "weight_decay_on": "matrices"})],
    ids=["plain", "dropout", "decay_on_matrices"],
)
def test_a_cancelled_run_resumed_from_its_checkpoint_ends_exactly_like_an_uninterrupted_one(
    dropout: float, decay: dict[str, object]
) -> None:
    # With decay on matrices only, AdamW holds two parameter groups: the checkpoint's
    # moments must land on the same parameters again.
    straight = InMemoryReporter()
    model_straight, _ = train(straight, dropout=dropout, **decay)

    interrupted = InMemoryReporter(stop_after_checks=23)  # stops before step 24
    with pytest.raises(RunCancelled) as stop:
        train(interrupted, dropout=dropout, **decay)
    assert stop.value.step == 23
    assert list_checkpoints(interrupted.checkpoint_dir())[-1].step == 23

    interrupted.stop_after_checks = None
    torch.manual_seed(12345)  # whatever the global RNG did meanwhile, the checkpoint restores it
    model_resumed, outcome = train(interrupted, dropout=dropout, **decay)
    assert outcome.resumed_from_step == 23
    for name, tensor in parameters(model_straight).items():
        assert torch.equal(tensor, parameters(model_resumed)[name]), name
    # The resumed run kept the evaluations from before the stop.
    assert [step for step, _ in outcome.eval_history] == [10, 20, 30, 40]


def test_a_run_resumed_from_its_final_checkpoint_reports_the_final_loss_it_ended_with() -> None:
    # A worker lost after the last checkpoint, before the result was written: the
    # requeued run takes no step, yet reports the loss the finished one did.
    reporter = InMemoryReporter()
    _, finished = train(reporter)
    _, resumed = train(reporter)
    assert resumed.resumed_from_step == 40
    assert math.isfinite(finished.final_train_loss)
    assert resumed.final_train_loss == finished.final_train_loss


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


class EveryKindOfParameter(torch.nn.Module):
    """One of each: embedding with a tied head, norm, linear with bias, convolution, and
    a bare state-space-like parameter (2-D, as S4D's A is)."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(5, 4)
        self.norm = torch.nn.LayerNorm(4)
        self.linear = torch.nn.Linear(4, 4)
        self.conv = torch.nn.Conv1d(4, 4, 3, groups=4)
        self.a_log = torch.nn.Parameter(torch.ones(4, 2))
        self.head = torch.nn.Linear(4, 5, bias=False)
        self.head.weight = self.emb.weight


def zero_gradient(model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """A loss whose gradient is zero (not absent) for every parameter: AdamW's update is
    then 0, and only weight decay moves a parameter."""
    return sum((0.0 * p).sum() for p in model.parameters())  # type: ignore[return-value]


def weights_after_zero_gradient_steps(on: WeightDecayOn) -> tuple[dict, dict]:
    """(initial, final) parameters of EveryKindOfParameter after 3 steps at lr 0.1 and
    weight decay 1.0, constant schedule: a decayed parameter ends at 0.9³ of its start."""
    spec = TrainSpec(
        steps=3,
        lr=0.1,
        min_lr=0.1,
        schedule="constant",
        warmup_steps=0,
        weight_decay=1.0,
        weight_decay_on=on,
        device="cpu",
    )
    torch.manual_seed(0)
    model = EveryKindOfParameter()
    initial = parameters(model)
    no_data = lambda rng, device: ()  # noqa: E731
    trainer = Trainer(
        model,
        spec,
        no_data,
        InMemoryReporter(),
        seed=0,
        device=torch.device("cpu"),
        objective=zero_gradient,
    )
    trainer.fit()
    return initial, parameters(model)


def test_decay_on_matrices_shrinks_linear_and_conv_weights_only() -> None:
    initial, final = weights_after_zero_gradient_steps("matrices")
    decayed = {"linear.weight", "conv.weight"}
    for name, start in initial.items():
        if name in decayed:
            torch.testing.assert_close(final[name], start * 0.9**3)
        else:  # embedding (and the head tied to it), norm, biases, the bare parameter
            assert torch.equal(final[name], start), name
    assert set(initial) == decayed | {
        "emb.weight",
        "norm.weight",
        "norm.bias",
        "linear.bias",
        "conv.bias",
        "a_log",
    }


def test_decay_on_all_shrinks_every_parameter_as_before_the_rule() -> None:
    initial, final = weights_after_zero_gradient_steps("all")
    for name, start in initial.items():
        torch.testing.assert_close(final[name], start * 0.9**3, msg=name)


def test_decay_on_all_builds_the_single_parameter_group_older_checkpoints_hold() -> None:
    # A checkpoint keys AdamW's moments by parameter index within its groups: under "all"
    # those indices must be model.parameters()'s, as before the rule existed.
    model = EveryKindOfParameter()
    spec = TrainSpec(weight_decay=0.3, weight_decay_on="all", device="cpu")
    no_data = lambda rng, device: ()  # noqa: E731
    trainer = Trainer(model, spec, no_data, InMemoryReporter(), seed=0, device=torch.device("cpu"))
    (group,) = trainer.optimizer.param_groups
    assert group["weight_decay"] == 0.3
    assert [id(p) for p in group["params"]] == [id(p) for p in model.parameters()]


@pytest.mark.parametrize("mixer", ["attention", "linear_attention", "s4d", "s6", "mamba2"])
def test_no_mixer_has_its_norms_biases_embeddings_or_state_parameters_decayed(
    mixer: str,
) -> None:
    # Named independently of the rule: in these models, a matrix or kernel is a parameter
    # called "weight" that is not a norm's or an embedding's; S4D's c (C, M, 2) and
    # log_neg_a_real (C, M), S6's a_log (E, N), Mamba-2's a_log, dt_bias and d are not.
    spec = SequenceModelSpec(n_layer=1, width=16, mixer={"type": mixer}, tie_embeddings=False)
    model = SequenceModel(spec, vocab_size=7, block_size=8)
    names = {name for name, _ in model.named_parameters()}
    matrices = {
        name
        for name in names
        if name.endswith(".weight") and "norm" not in name and "emb" not in name
    }
    assert "head.weight" in matrices
    assert decayed_parameter_names(model, "matrices") == matrices
    assert decayed_parameter_names(model, "all") == names


def test_progress_moves_every_ten_steps_long_before_the_first_logged_point(tmp_path) -> None:
    """A 100,000-step run logs its loss every 500 steps; its progress still moves at
    steps 10, 20 and 30, so a long run does not sit at 0% for minutes."""
    reporter = InMemoryReporter(directory=tmp_path, stop_after_checks=30)
    with pytest.raises(RunCancelled):
        train(reporter, steps=100_000)
    assert [fraction for fraction, _ in reporter.progress_log] == [1e-4, 2e-4, 3e-4]
    # The helper evaluates every 10 steps; the first logged loss would be at step 500.
    assert not [name for _, name, _ in reporter.metrics if name.startswith("train/")]
