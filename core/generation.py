"""Greedy text completion with a character-level decoder, batched by prompt length."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import torch

from core.data.text import CharVocab
from core.models.transformer import Decoder, greedy_decode


def complete_texts(
    model: Decoder,
    vocab: CharVocab,
    prompts: Sequence[str],
    max_new_tokens: int,
    stop_char: str | None = None,
) -> list[str]:
    """Greedy continuation of each prompt, cut before `stop_char` when it appears.

    Prompts of equal length are decoded together, so no padding is needed and positions
    match training; prompts longer than the model's context keep their last block_size
    characters, as nanoGPT's sampler does.
    """
    device = next(model.parameters()).device
    stop_id = vocab.id(stop_char) if stop_char is not None else None
    by_length: dict[int, list[int]] = defaultdict(list)
    for index, prompt in enumerate(prompts):
        by_length[len(prompt)].append(index)
    completions = [""] * len(prompts)
    for indices in by_length.values():
        batch = torch.tensor([vocab.encode(prompts[i]) for i in indices], device=device)
        generated = greedy_decode(model, batch, max_new_tokens, stop_token=stop_id)  # (b, N)
        for index, row in zip(indices, generated.tolist(), strict=True):
            text = vocab.decode(row)
            completions[index] = text.split(stop_char, 1)[0] if stop_char else text
    return completions
