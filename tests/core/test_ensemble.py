"""A batched ensemble member ends exactly where the same member trained alone ends."""

import pytest
import torch

from core.data.text import CharVocab
from core.models.sequence_model import SequenceModel, SequenceModelSpec
from core.models.transformer import Decoder, DecoderSpec
from core.reporter import InMemoryReporter
from core.specs import TrainSpec, WeightDecayOn
from core.training.ensemble import (
    Ensemble,
    Member,
    batched_layers_apply,
    stacked_decoder_forward,
    train_ensemble,
)
from core.training.samplers import TokenStreamSampler
from core.training.trainer import Trainer
from core.training.weight_decay import decayed_parameter_names

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


def build(model: SequenceModelSpec = MODEL) -> SequenceModel:
    return SequenceModel(model, VOCAB.size, 9).double()


def sampler() -> TokenStreamSampler:
    return TokenStreamSampler.from_lines(
        LINES, VOCAB.encode, block_size=9, batch_size=8, passes=4, seed=0
    )


def train_alone(
    member: Member, model_spec: SequenceModelSpec = MODEL, train_spec: TrainSpec = SPEC
) -> SequenceModel:
    torch.manual_seed(member.seed)
    model = build(model_spec)
    spec = train_spec.model_copy(update={"lr": member.lr, "min_lr": member.min_lr})
    trainer = Trainer(
        model, spec, sampler(), InMemoryReporter(), seed=member.seed, device=torch.device("cpu")
    )
    trainer.fit()
    return model


def assert_members_equal_solo_runs(
    members: list[Member],
    model_spec: SequenceModelSpec,
    *,
    batched_layers: bool,
    train_spec: TrainSpec = SPEC,
) -> None:
    ensemble, losses = train_ensemble(
        lambda: build(model_spec),
        members,
        train_spec,
        sampler(),
        torch.device("cpu"),
        batched_layers=batched_layers,
    )
    assert ensemble.batched_layers == batched_layers
    for index, member in enumerate(members):
        alone = dict(train_alone(member, model_spec, train_spec).named_parameters())
        batched = ensemble.member_state(index)
        assert batched.keys() == alone.keys()
        for name, value in batched.items():
            torch.testing.assert_close(value, alone[name].detach(), rtol=1e-9, atol=1e-10)
    assert losses.shape == (len(members),)


MEMBERS = [
    Member(seed=0, lr=3e-3, min_lr=3e-4),
    Member(seed=1, lr=3e-3, min_lr=3e-4),
    Member(seed=2, lr=1e-2, min_lr=5e-4),  # its own floor, not one scaled with its peak
]


@pytest.mark.parametrize("on", ["matrices", "all"])
@pytest.mark.parametrize("batched_layers", [True, False], ids=["batched_layers", "vmap"])
def test_every_member_equals_its_solo_run(batched_layers: bool, on: WeightDecayOn) -> None:
    # Under either weight-decay rule (SPEC decays at 0.1), the batched AdamW decays what
    # the Trainer's parameter groups decay.
    train_spec = SPEC.model_copy(update={"weight_decay_on": on})
    assert_members_equal_solo_runs(
        MEMBERS, MODEL, batched_layers=batched_layers, train_spec=train_spec
    )


def test_the_weight_decay_rule_changes_what_members_learn() -> None:
    # Else the solo-run equality above could not tell the two rules apart.
    members = MEMBERS[:1]
    states = {
        on: train_ensemble(
            build,
            members,
            SPEC.model_copy(update={"weight_decay_on": on}),
            sampler(),
            torch.device("cpu"),
        )[0].member_state(0)
        for on in ("matrices", "all")
    }
    assert not torch.equal(states["matrices"]["tok_emb.weight"], states["all"]["tok_emb.weight"])


def test_the_decay_mask_covers_exactly_the_decayed_parameters_entries() -> None:
    ensemble = Ensemble([build() for _ in range(2)])
    mask = ensemble.decay_mask("matrices")  # (P,)
    decayed = decayed_parameter_names(ensemble.template, "matrices")
    offset = 0
    for name, value in ensemble.params.items():
        count = value[0].numel()
        assert bool(mask[offset : offset + count].all()) == (name in decayed), name
        assert bool(mask[offset : offset + count].any()) == (name in decayed), name
        offset += count
    assert offset == mask.numel()
    assert "tok_emb.weight" not in decayed  # the tied head's table: an embedding
    assert bool(ensemble.decay_mask("all").all())


VARIANTS = {
    "untied_rotary_relu": {"tie_embeddings": False, "positions": "rotary", "activation": "relu"},
    "no_bias_no_positions_silu": {"bias": False, "positions": "none", "activation": "silu"},
    "softmax_ffn_two_layers": {"activation": "softmax", "n_layer": 2},
    "no_ffn": {"ffn_ratio": 0.0},
}


@pytest.mark.parametrize("fields", VARIANTS.values(), ids=VARIANTS.keys())
def test_batched_layers_match_solo_runs_for_every_decoder_variant(fields: dict) -> None:
    assert_members_equal_solo_runs(
        MEMBERS[1:], MODEL.model_copy(update=fields), batched_layers=True
    )


def test_batched_layers_compute_each_members_own_forward() -> None:
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(build(MODEL.model_copy(update={"tie_embeddings": False})))
    ensemble = Ensemble(models)
    tokens = torch.randint(0, VOCAB.size, (3, 4, 9))
    logits = stacked_decoder_forward(ensemble.template, ensemble.params, tokens)
    for index, model in enumerate(models):
        torch.testing.assert_close(logits[index], model(tokens[index]), rtol=1e-12, atol=1e-12)


def test_other_mixers_fall_back_to_vmap_and_still_equal_their_solo_runs() -> None:
    mixer = {"type": "linear_attention", "n_head": 2}
    model_spec = SequenceModelSpec.model_validate({**MODEL.model_dump(), "mixer": mixer})
    assert not batched_layers_apply(build(model_spec))
    assert_members_equal_solo_runs(MEMBERS[:2], model_spec, batched_layers=False)


def test_parameters_are_views_of_one_flat_buffer() -> None:
    ensemble = Ensemble([build() for _ in range(2)])
    total = sum(p[0].numel() for p in ensemble.params.values())
    assert ensemble.flat.shape == (2, total)
    for param in ensemble.params.values():
        assert param.is_leaf and param.requires_grad
        assert param.untyped_storage().data_ptr() == ensemble.flat.untyped_storage().data_ptr()


def test_members_with_different_seeds_end_differently() -> None:
    members = MEMBERS[:2]
    ensemble, losses = train_ensemble(build, members, SPEC, sampler(), torch.device("cpu"))
    first, second = ensemble.member_state(0), ensemble.member_state(1)
    assert not torch.equal(first["tok_emb.weight"], second["tok_emb.weight"])
    assert losses.shape == (2,)


def test_dropout_is_refused() -> None:
    spec = MODEL.model_copy(update={"dropout": 0.1})
    with pytest.raises(ValueError, match="dropout 0"):
        Ensemble([SequenceModel(spec, VOCAB.size, 9) for _ in range(2)])


@pytest.mark.parametrize("bias", [False, True])
def test_capacity_tradeoff_s_decoder_runs_through_the_batched_layers(bias: bool) -> None:
    # Under vmap its fused attention kernel falls back to a loop over members.
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        spec = DecoderSpec(n_layer=2, n_head=2, n_embd=8, bias=bias)
        models.append(Decoder(spec, VOCAB.size, 9).double())
    ensemble = Ensemble(models)
    assert ensemble.batched_layers
    tokens = torch.randint(0, VOCAB.size, (3, 4, 9))
    logits = ensemble.forward(tokens)
    for index, model in enumerate(models):
        torch.testing.assert_close(logits[index], model(tokens[index]), rtol=1e-12, atol=1e-12)
