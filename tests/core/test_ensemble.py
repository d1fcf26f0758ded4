"""A batched ensemble member ends exactly where the same member trained alone ends."""

import pytest
import torch

from core.data.text import CharVocab, LineStreamSampler
from core.models.sequence_model import SequenceModel, SequenceModelSpec
from core.reporter import InMemoryReporter
from core.specs import TrainSpec
from core.training.ensemble import Ensemble, Member, train_ensemble
from core.training.trainer import Trainer

LINES = [f"<{a}+{b}={a + b}>".ljust(8) + "\n" for a in range(10) for b in range(10)]
VOCAB = CharVocab.from_texts(LINES)
SPEC = TrainSpec(
    steps=25,
    batch_size=8,
    lr=3e-3,
    min_lr=3e-4,
    warmup_steps=5,
    eval_every=1000,
    checkpoint_every=1000,
    weight_decay=0.1,
    grad_clip=0.5,
    device="cpu",
)
MODEL = SequenceModelSpec(n_layer=1, width=16, mixer={"type": "attention", "n_head": 2})


def build() -> SequenceModel:
    return SequenceModel(MODEL, VOCAB.size, 9).double()


def sampler() -> LineStreamSampler:
    return LineStreamSampler(LINES, VOCAB, block_size=9, batch_size=8, passes=4, seed=0)


def train_alone(member: Member) -> SequenceModel:
    torch.manual_seed(member.seed)
    model = build()
    spec = SPEC.model_copy(update={"lr": member.lr, "min_lr": SPEC.min_lr * member.lr / SPEC.lr})
    trainer = Trainer(
        model, spec, sampler(), InMemoryReporter(), seed=member.seed, device=torch.device("cpu")
    )
    trainer.fit()
    return model


def test_every_member_equals_its_solo_run() -> None:
    members = [Member(seed=0, lr=3e-3), Member(seed=1, lr=3e-3), Member(seed=2, lr=1e-2)]
    ensemble, _ = train_ensemble(build, members, SPEC, sampler(), torch.device("cpu"))
    for index, member in enumerate(members):
        alone = dict(train_alone(member).named_parameters())
        batched = ensemble.member_state(index)
        assert batched.keys() == alone.keys()
        for name, value in batched.items():
            torch.testing.assert_close(value, alone[name].detach(), rtol=1e-9, atol=1e-10)


def test_members_with_different_seeds_end_differently() -> None:
    members = [Member(seed=0, lr=3e-3), Member(seed=1, lr=3e-3)]
    ensemble, losses = train_ensemble(build, members, SPEC, sampler(), torch.device("cpu"))
    first, second = ensemble.member_state(0), ensemble.member_state(1)
    assert not torch.equal(first["tok_emb.weight"], second["tok_emb.weight"])
    assert losses.shape == (2,)


def test_dropout_is_refused() -> None:
    spec = MODEL.model_copy(update={"dropout": 0.1})
    with pytest.raises(ValueError, match="dropout 0"):
        Ensemble([SequenceModel(spec, VOCAB.size, 9) for _ in range(2)])
