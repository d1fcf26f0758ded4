"""The decoder is causal, shaped as documented, and ties its embedding and head."""

import pytest
import torch

from core.data.text import CharVocab
from core.generation import complete_texts
from core.models.transformer import Decoder, DecoderSpec, greedy_decode, parameter_count


def make_decoder(**fields: object) -> Decoder:
    torch.manual_seed(0)
    return Decoder(DecoderSpec(**fields), vocab_size=11, block_size=8)


def test_logits_have_shape_batch_time_vocab() -> None:
    model = make_decoder(n_layer=2, n_head=2, n_embd=16)
    logits = model(torch.randint(0, 11, (3, 5)))
    assert logits.shape == (3, 5, 11)


def test_a_later_token_cannot_change_earlier_logits() -> None:
    model = make_decoder(n_layer=2, n_head=2, n_embd=16).eval()
    tokens = torch.randint(0, 11, (1, 8))
    changed = tokens.clone()
    changed[0, 5] = (tokens[0, 5] + 1) % 11
    assert torch.allclose(model(tokens)[0, :5], model(changed)[0, :5])
    assert not torch.allclose(model(tokens)[0, 5:], model(changed)[0, 5:])


def test_embedding_and_head_are_one_matrix() -> None:
    model = make_decoder(n_embd=14, bias=False)
    assert model.head.weight is model.tok_emb.weight
    # 11·14 embedding + 8·14 positions + attention 14·42 + 14·14 + FFN 2·14·14 + 3 norms.
    assert model.num_parameters() == 11 * 14 + 8 * 14 + 14 * 42 + 14 * 14 + 2 * 14 * 14 + 3 * 14


def test_heads_must_divide_the_width() -> None:
    with pytest.raises(ValueError, match="divisible"):
        DecoderSpec(n_embd=14, n_head=4)


def test_context_longer_than_block_size_is_an_error() -> None:
    with pytest.raises(ValueError, match="block_size"):
        make_decoder()(torch.zeros(1, 9, dtype=torch.long))


def test_greedy_decoding_stops_rows_at_the_stop_token() -> None:
    model = make_decoder().eval()
    out = greedy_decode(model, torch.zeros(4, 3, dtype=torch.long), 6, stop_token=None)
    assert out.shape == (4, 6)
    assert torch.equal(out[0], out[1])  # equal prompts, deterministic argmax


def test_complete_texts_matches_one_prompt_at_a_time() -> None:
    vocab = CharVocab.from_texts(["abcdefgh\n"])
    torch.manual_seed(1)
    model = Decoder(DecoderSpec(n_embd=8), vocab_size=vocab.size, block_size=6).eval()
    prompts = ["ab", "abc", "cd", "h", "abcdefgh"]
    together = complete_texts(model, vocab, prompts, max_new_tokens=3, stop_char="\n")
    alone = [complete_texts(model, vocab, [p], 3, "\n")[0] for p in prompts]
    assert together == alone


@pytest.mark.parametrize(
    "fields",
    [
        {"n_embd": 14, "bias": False},
        {"n_layer": 3, "n_head": 2, "n_embd": 16, "mlp_ratio": 4.0},
        {"n_layer": 2, "n_embd": 10, "mlp_ratio": 0.5, "bias": True},
    ],
)
def test_parameter_count_without_building_matches_the_built_model(fields: dict) -> None:
    spec = DecoderSpec(**fields)
    assert parameter_count(spec, 11, 8) == Decoder(spec, 11, 8).num_parameters()
