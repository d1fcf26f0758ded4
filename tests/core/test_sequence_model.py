"""The configurable decoder builds every documented variant, causally and with the right size."""

import pytest
import torch
from pydantic import ValidationError

from core.models.sequence_model import SequenceModel, SequenceModelSpec, parameter_count

MIXERS = [
    {"type": "attention", "n_head": 2},
    {"type": "linear_attention", "n_head": 2},
    {"type": "s4d"},
    {"type": "s6", "state_size": 8},
    {"type": "mamba2", "n_head": 2, "state_size": 8},
]


def build(vocab: int = 13, block: int = 12, **fields: object) -> SequenceModel:
    torch.manual_seed(0)
    return SequenceModel(SequenceModelSpec(**fields), vocab_size=vocab, block_size=block)


@pytest.mark.parametrize("mixer", MIXERS, ids=lambda m: m["type"])
def test_every_mixer_gives_causal_next_token_logits(mixer: dict) -> None:
    model = build(width=16, mixer=mixer).eval()
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


@pytest.mark.parametrize("mixer", MIXERS, ids=lambda m: m["type"])
@pytest.mark.parametrize(
    "shape",
    [
        {"tie_embeddings": True, "positions": "learned"},
        {"tie_embeddings": False, "positions": "none", "n_layer": 2},
        {"tie_embeddings": False, "positions": "learned", "split_width_across_layers": True},
    ],
    ids=["tied-learned", "untied-none", "untied-split"],
)
def test_parameter_count_without_building_matches_the_built_model(mixer: dict, shape: dict) -> None:
    spec = SequenceModelSpec(width=32, mixer=mixer, **shape)
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
