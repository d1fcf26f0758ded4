"""A decoder whose slot tokens are pointers into its own prompt: `schema_linking`'s policy.

The trunk is the engine's `SequenceModel` itself (embeddings, blocks, final norm, and its
initialisation: GPT-2's for attention-like mixers, their own for recurrent ones), so every
mixer and option it supports works here. Ordinary tokens get logits from its head, cut to
the word rows (with `tie_embeddings`, the token embedding's word rows). A slot token's
logit is instead a scaled dot product between a query read from the current position and
a key read from the position where that slot first occurs in the sequence; a slot that
has not occurred yet gets a large negative logit. So the model names a schema item by
pointing at where the prompt listed it, never through a weight learned for that item's
name, and a schema it has never seen can be answered.

The model still maps token ids (B, T) to next-token logits (B, T, V), so the probes that
read any sequence model (exact recall, loss and zlib MIAs) read it unchanged. It wraps a
SequenceModel rather than subclassing it, so code that special-cases SequenceModel's
own forward (the batched ensembles) never mistakes it for one.

Dimensions: B batch, T positions, C width, M slots, V vocabulary (slots last).
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn
from torch.nn import functional as F

from core.models.sequence_model import SequenceModel, SequenceModelSpec

# The logit of a slot that has not occurred: far below any real logit, but finite, so
# that probes computing p·log p or log-softmax never meet an infinity.
UNSEEN_SLOT_LOGIT = -1e9


class PointerPolicy(nn.Module):
    """SequenceModel trunk → (word logits from its head, slot logits from pointers).
    Slot tokens are the last `n_slots` ids of the vocabulary."""

    def __init__(
        self, spec: SequenceModelSpec, vocab_size: int, block_size: int, n_slots: int
    ) -> None:
        super().__init__()
        if not 0 < n_slots < vocab_size:
            raise ValueError(f"n_slots {n_slots} must lie in (0, vocab size {vocab_size})")
        width = spec.layer_width
        self.block_size, self.n_slots = block_size, n_slots
        self.slot_start = vocab_size - n_slots
        self.trunk = SequenceModel(spec, vocab_size, block_size)
        if not spec.tie_embeddings:  # an untied head needs rows for words only
            self.trunk.head = nn.Linear(width, self.slot_start, bias=False)
        self.query = nn.Linear(width, width, bias=False)
        self.key = nn.Linear(width, width, bias=False)
        if not self.query.weight.is_meta:  # the trunk initialised itself; these are new
            fresh = [self.query, self.key] + ([] if spec.tie_embeddings else [self.trunk.head])
            for layer in fresh:
                nn.init.normal_(layer.weight, std=0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids → (B, T, V) next-token logits, slot logits by pointing."""
        hidden = self.hidden_states(idx)  # (B, T, C)
        word_logits = F.linear(hidden, self.trunk.head.weight[: self.slot_start])  # (B, T, V − M)
        return torch.cat([word_logits, self.slot_logits(idx, hidden)], dim=-1)

    def hidden_states(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids → (B, T, C) the trunk's normalised last hidden states."""
        return self.trunk.hidden_states(idx)

    def slot_logits(self, idx: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """(B, T, M): query at t · key at slot m's first position, masked until it occurs."""
        seq = idx.shape[1]
        slot = idx - self.slot_start  # (B, T), negative for words
        is_slot = slot >= 0
        one_hot = torch.zeros(*idx.shape, self.n_slots, device=idx.device, dtype=torch.bool)
        one_hot.scatter_(2, slot.clamp(min=0).unsqueeze(-1), is_slot.unsqueeze(-1))
        first = one_hot & (one_hot.cumsum(dim=1) == 1)  # (B, T, M) first occurrence only
        keys = torch.einsum("btm,btc->bmc", first.to(hidden.dtype), self.key(hidden))
        scores = self.query(hidden) @ keys.transpose(1, 2) / math.sqrt(hidden.shape[-1])
        positions = torch.arange(seq, device=idx.device)
        occurs_at = torch.where(first.any(dim=1), (first * positions[:, None]).sum(1), seq)
        visible = occurs_at[:, None, :] <= positions[None, :, None]  # (B, T, M)
        return scores.masked_fill(~visible, UNSEEN_SLOT_LOGIT)


def pointer_parameter_count(
    spec: SequenceModelSpec, vocab_size: int, block_size: int, n_slots: int
) -> int:
    """Parameters of `PointerPolicy(spec, vocab_size, block_size, n_slots)`, counted on
    the meta device (nothing is allocated)."""
    return _count(spec, vocab_size, block_size, n_slots)


@functools.lru_cache(maxsize=256)
def _count(spec: SequenceModelSpec, vocab_size: int, block_size: int, n_slots: int) -> int:
    with torch.device("meta"):
        model = PointerPolicy(spec, vocab_size, block_size, n_slots)
        return sum(p.numel() for p in model.parameters())
