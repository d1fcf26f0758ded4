"""Causal sequence mixers, one file each; every mixer maps (B, T, C) to (B, T, C).

`MixerSpec` is a discriminated union over the mixers' specs (`type` field), so a model
spec can say `{"type": "s6", "state_size": 16}` and get a validated mixer. A recurrent
mixer (S4D, S6, Mamba-2) is built in one of two layouts, `BlockLayout`: the gated block
the three share (gated_block.py), or each one's own layout from before that block
existed ("per_mixer"). Attention and linear attention have one layout.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field
from torch import nn

from core.models.mixers.attention import AttentionSpec, SoftmaxAttention
from core.models.mixers.linear_attention import LinearAttention, LinearAttentionSpec
from core.models.mixers.mamba2 import Mamba2, Mamba2PerMixer, Mamba2Spec
from core.models.mixers.s4d import S4D, S4DPerMixer, S4DSpec
from core.models.mixers.s6 import S6, S6Spec

MixerSpec = Annotated[
    AttentionSpec | LinearAttentionSpec | S4DSpec | S6Spec | Mamba2Spec,
    Field(discriminator="type"),
]
BlockLayout = Literal["gated", "per_mixer"]

ATTENTION_LIKE = frozenset({"attention", "linear_attention"})

_ATTENTION_BUILDERS: dict[str, type[nn.Module]] = {
    "attention": SoftmaxAttention,
    "linear_attention": LinearAttention,
}
# S6's own layout is the gated block, so it is the same module in both.
_RECURRENT_BUILDERS: dict[BlockLayout, dict[str, type[nn.Module]]] = {
    "gated": {"s4d": S4D, "s6": S6, "mamba2": Mamba2},
    "per_mixer": {"s4d": S4DPerMixer, "s6": S6, "mamba2": Mamba2PerMixer},
}
RECURRENT = frozenset(_RECURRENT_BUILDERS["gated"])


def build_mixer(
    spec: MixerSpec, width: int, block: BlockLayout = "gated", rotary: bool = False
) -> nn.Module:
    """The mixer `spec` describes, for model width `width`, in layout `block`.

    `block` applies to the recurrent mixers; attention and linear attention have one
    layout. `rotary` applies rotary positions inside softmax attention; the recurrent
    mixers know order from their recurrence and take no positions.
    """
    if spec.type in ATTENTION_LIKE:
        return _ATTENTION_BUILDERS[spec.type](spec, width, rotary=rotary)  # type: ignore[call-arg]
    return _RECURRENT_BUILDERS[block][spec.type](spec, width)  # type: ignore[call-arg]


__all__ = ["ATTENTION_LIKE", "RECURRENT", "BlockLayout", "MixerSpec", "build_mixer"]
