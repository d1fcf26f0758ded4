"""Causal sequence mixers, one file each; every mixer maps (B, T, C) to (B, T, C).

`MixerSpec` is a discriminated union over the mixers' specs (`type` field), so a model
spec can say `{"type": "s6", "state_size": 16}` and get a validated mixer.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from torch import nn

from core.models.mixers.attention import AttentionSpec, SoftmaxAttention
from core.models.mixers.linear_attention import LinearAttention, LinearAttentionSpec
from core.models.mixers.mamba2 import Mamba2, Mamba2Spec
from core.models.mixers.s4d import S4D, S4DSpec
from core.models.mixers.s6 import S6, S6Spec

MixerSpec = Annotated[
    AttentionSpec | LinearAttentionSpec | S4DSpec | S6Spec | Mamba2Spec,
    Field(discriminator="type"),
]

_BUILDERS: dict[str, type[nn.Module]] = {
    "attention": SoftmaxAttention,
    "linear_attention": LinearAttention,
    "s4d": S4D,
    "s6": S6,
    "mamba2": Mamba2,
}


ATTENTION_LIKE = frozenset({"attention", "linear_attention"})


def build_mixer(spec: MixerSpec, width: int, rotary: bool = False) -> nn.Module:
    """The mixer `spec` describes, for model width `width`.

    `rotary` applies rotary positions inside softmax attention; the recurrent mixers
    (S4D, S6, Mamba-2) know order from their recurrence and take no positions.
    """
    if spec.type in ATTENTION_LIKE:
        return _BUILDERS[spec.type](spec, width, rotary=rotary)  # type: ignore[call-arg]
    return _BUILDERS[spec.type](spec, width)


__all__ = ["ATTENTION_LIKE", "MixerSpec", "build_mixer"]
