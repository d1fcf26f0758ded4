"""The configurable decoder builds every documented variant, causally and with the right size."""

import pytest
import torch
from pydantic import ValidationError

from core.models.mixers.gated_block import GatedBlock
from core.models.sequence_model import SequenceModel, SequenceModelSpec, parameter_count
from core.spec_model import spec_hash

MIXERS = [
    {"type": "attention", "n_head": 2},
    {"type": "linear_attention", "n_head": 2},
    {"type": "s4d"},
    {"type": "s6", "state_size": 8},
    {"type": "mamba2", "n_head": 2, "state_size": 8},
]
RECURRENT = [mixer for mixer in MIXERS if mixer["type"] in ("s4d", "s6", "mamba2")]


def _model_id(fields: dict) -> str:
    return f"{fields['mixer']['type']}-{fields.get('block', 'default')}"


def build(vocab: int = 13, length: int = 12, **fields: object) -> SequenceModel:
    torch.manual_seed(0)
    return SequenceModel(SequenceModelSpec(**fields), vocab_size=vocab, block_size=length)


LAYOUTS = [{"mixer": mixer} for mixer in MIXERS] + [
    {"mixer": mixer, "block": "per_mixer"} for mixer in RECURRENT
]


@pytest.mark.parametrize("fields", LAYOUTS, ids=_model_id)
def test_every_mixer_gives_causal_next_token_logits(fields: dict) -> None:
    model = build(width=16, **fields).eval()
    tokens = torch.randint(0, 13, (2, 12))
    logits = model(tokens)
    assert logits.shape == (2, 12, 13)
    changed = tokens.clone()
    changed[:, 8] = (changed[:, 8] + 1) % 13
    torch.testing.assert_close(model(changed)[:, :8], logits[:, :8])


@pytest.mark.parametrize("activation", ["relu", "gelu", "rrelu", "silu", "softmax"])
def test_every_ffn_activation_trains(activation: str) -> None:
    model = build(width=16, activation=activation)
    loss = model(torch.randint(0, 13, (2, 12))).logsumexp(-1).mean()
    loss.backward()
    assert model.blocks[0].ffn.up.weight.grad.abs().sum() > 0


def test_softmax_activation_makes_hidden_units_a_distribution() -> None:
    model = build(width=8, activation="softmax")
    ffn = model.blocks[0].ffn
    hidden = ffn.up(torch.randn(3, 8)).softmax(-1)
    torch.testing.assert_close(hidden.sum(-1), torch.ones(3))


def test_split_width_holds_the_total_fixed_across_depth() -> None:
    spec = SequenceModelSpec(width=96, n_layer=3, split_width_across_layers=True)
    assert spec.layer_width == 32
    assert build(width=96, n_layer=3, split_width_across_layers=True).tok_emb.weight.shape[1] == 32


def test_tied_and_untied_embeddings() -> None:
    tied, untied = build(width=16), build(width=16, tie_embeddings=False)
    assert tied.head.weight is tied.tok_emb.weight
    assert untied.num_parameters() - tied.num_parameters() == 13 * 16


def test_rotary_positions_drop_the_position_table_and_change_outputs() -> None:
    rotary = build(width=16, positions="rotary")
    assert rotary.pos_emb is None
    none = build(width=16, positions="none")
    tokens = torch.randint(0, 13, (1, 12))
    assert not torch.allclose(rotary.eval()(tokens), none.eval()(tokens))


@pytest.mark.parametrize("fields", LAYOUTS, ids=_model_id)
@pytest.mark.parametrize(
    "shape",
    [
        {"tie_embeddings": True, "positions": "learned"},
        {"tie_embeddings": False, "positions": "none", "n_layer": 2},
        {"tie_embeddings": False, "positions": "learned", "split_width_across_layers": True},
    ],
    ids=["tied-learned", "untied-none", "untied-split"],
)
def test_parameter_count_without_building_matches_the_built_model(
    fields: dict, shape: dict
) -> None:
    spec = SequenceModelSpec(width=32, **fields, **shape)
    for vocab, length in ((13, 12), (1, 1), (257, 100)):
        built = SequenceModel(spec, vocab_size=vocab, block_size=length).num_parameters()
        assert parameter_count(spec, vocab, length) == built, (vocab, length)


def test_inconsistent_shapes_are_refused() -> None:
    with pytest.raises(ValidationError, match="rotary positions apply"):
        SequenceModelSpec(mixer={"type": "s6"}, positions="rotary")
    with pytest.raises(ValidationError, match="not divisible"):
        SequenceModelSpec(width=30, mixer={"type": "attention", "n_head": 4})
    with pytest.raises(ValidationError, match="leaves < 2"):
        SequenceModelSpec(width=8, n_layer=8, split_width_across_layers=True)


@pytest.mark.parametrize("mixer", RECURRENT, ids=lambda m: m["type"])
def test_a_recurrent_mixer_gets_the_gated_block_unless_its_spec_predates_blocks(
    mixer: dict,
) -> None:
    """A request naming no block gets the gated block; a spec stored before `block`
    existed keeps the per-mixer layout it ran with, and its hash leaves `block` out."""
    request = SequenceModelSpec(mixer=mixer)
    assert request.block == "gated" and request.layout == "gated"
    assert isinstance(SequenceModel(request, 13, 12).blocks[0].mixer, GatedBlock)
    old = SequenceModelSpec.model_validate({"mixer": mixer}, context={"stored": True})
    assert old.block is None and old.layout == "per_mixer"
    assert "block" not in old.model_dump(exclude_none=True)
    assert spec_hash(old) != spec_hash(request)
    named = SequenceModelSpec(mixer=mixer, block="per_mixer")
    assert named.layout == "per_mixer"
    assert SequenceModelSpec.model_validate(named.model_dump(), context={"stored": True}) == named


@pytest.mark.parametrize("mixer", MIXERS[:2], ids=lambda m: m["type"])
def test_attention_mixers_have_one_block_whatever_the_spec_names(mixer: dict) -> None:
    assert SequenceModelSpec(mixer=mixer).block is None
    assert SequenceModelSpec(mixer=mixer, block="gated").block is None
    assert SequenceModelSpec(mixer=mixer, block="gated") == SequenceModelSpec(mixer=mixer)


def test_s4d_in_the_gated_block_records_its_expansion_and_the_bare_layer_refuses_one() -> None:
    gated = SequenceModelSpec(mixer={"type": "s4d"})
    assert (gated.mixer.expand, gated.mixer.conv_width) == (2, 4)  # as S6's and Mamba-2's
    wider = SequenceModelSpec(mixer={"type": "s4d", "expand": 3})
    assert (wider.mixer.expand, wider.mixer.conv_width) == (3, 4)
    with pytest.raises(ValidationError, match="no expand"):
        SequenceModelSpec(mixer={"type": "s4d", "expand": 2}, block="per_mixer")


@pytest.mark.parametrize("mixer_type", [{"a": 1}, [1], None, 3])
def test_a_malformed_mixer_type_is_a_validation_error(mixer_type: object) -> None:
    with pytest.raises(ValidationError):
        SequenceModelSpec.model_validate({"mixer": {"type": mixer_type}})
