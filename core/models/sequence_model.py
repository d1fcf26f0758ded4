"""The configurable causal decoder that memlab's sequence-model kinds train.

One layer = pre-norm mixer + pre-norm feed-forward, both residual. What varies:
width and depth (optionally splitting a fixed total width across layers, d = base / L,
as "Capacity Matters" does), the sequence mixer (attention, linear attention, S4D,
S6, Mamba-2) and, for the recurrent ones, the block around it (`block`), FFN width and
activation (relu, gelu, rrelu, silu, or softmax over the hidden units), learned or
rotary positions, tied or untied embeddings.

Dimensions: B batch, T time, C layer width, F FFN width, V vocabulary.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, ValidationInfo, model_validator
from torch import nn
from torch.nn import functional as F

from core.models.mixers import ATTENTION_LIKE, RECURRENT, BlockLayout, MixerSpec, build_mixer
from core.models.mixers.attention import AttentionSpec
from core.models.mixers.gated_block import DEFAULT_CONV_WIDTH, DEFAULT_EXPAND
from core.models.mixers.s4d import S4DSpec
from core.spec_model import SpecModel, field_error, stored

Activation = Literal["relu", "gelu", "rrelu", "silu", "softmax"]
Positions = Literal["learned", "rotary", "none"]


class SequenceModelSpec(SpecModel):
    """Shape of a SequenceModel; vocabulary and context length come from the data."""

    n_layer: int = Field(2, ge=1, le=48)
    width: int = Field(64, ge=2, le=4096, description="Model width C (or total, see below).")
    split_width_across_layers: bool = Field(
        False, description="Hold total width fixed: each layer gets width // n_layer."
    )
    mixer: MixerSpec = AttentionSpec(n_head=2)
    block: BlockLayout | None = Field(
        None,
        description="The block around a recurrent mixer (S4D, S6, Mamba-2). 'gated': "
        "Mamba's block, shared by the three (input projection to u and a gate z, causal "
        "depthwise convolution and SiLU on u, the mixer's SSM, y·SiLU(z), output "
        "projection), so that they differ only in their SSM; for the same state_size N each "
        "keeps N real numbers of state per inner channel. 'per_mixer': each as memlab built "
        "it before: S4D a bare SSM + GELU + output projection, S6 and Mamba-2 their own "
        "Mamba blocks (S6's is the gated block). A request that names none gets 'gated'; a "
        "spec stored before this field existed keeps 'per_mixer'. Null for attention and "
        "linear attention, which have one block (a block named for them is dropped).",
    )
    ffn_ratio: float = Field(4.0, ge=0, le=16, description="FFN width / C; 0 = no FFN.")
    activation: Activation = "gelu"
    positions: Positions = "learned"
    tie_embeddings: bool = True
    dropout: float = Field(0.0, ge=0, lt=1)
    bias: bool = True

    # A stored spec without `block` holds null there: the per-mixer layout it ran with.
    # A kind's default model must leave `block` null (an attention mixer does), or its
    # resolved block would be merged into stored specs (ExperimentSpec's nested defaults).
    added_fields: ClassVar[frozenset[str]] = frozenset({"block"})

    @property
    def layer_width(self) -> int:
        return self.width // self.n_layer if self.split_width_across_layers else self.width

    @property
    def layout(self) -> BlockLayout:
        """The block the mixer is built in (attention-like mixers have only their own)."""
        return self.block or "per_mixer"

    @model_validator(mode="before")
    @classmethod
    def _resolve_block(cls, raw: Any, info: ValidationInfo) -> Any:
        """Attention-like mixers have no block to choose: null. A recurrent mixer named
        without a block gets the gated one, unless the spec was stored before `block`
        existed (it keeps null, the per-mixer layout). S4D in the gated block gets the
        block's expand and conv_width written in, so the stored spec says them."""
        if not isinstance(raw, dict):
            return raw
        filled = dict(raw)
        mixer = filled.get("mixer", cls.model_fields["mixer"].default)
        mixer_type = mixer.get("type") if isinstance(mixer, dict) else getattr(mixer, "type", None)
        if not isinstance(mixer_type, str):
            return filled  # the mixer union reports the missing or malformed type
        if mixer_type in ATTENTION_LIKE:
            filled["block"] = None
        elif mixer_type in RECURRENT and filled.get("block") is None and not stored(info):
            filled["block"] = "gated"
        if mixer_type == "s4d" and filled.get("block") == "gated":
            filled["mixer"] = _s4d_in_gated_block(mixer)
        return filled

    @model_validator(mode="after")
    def _consistent(self) -> SequenceModelSpec:
        if self.layer_width < 2:
            raise ValueError(f"width {self.width} split over {self.n_layer} layers leaves < 2")
        if self.positions == "rotary" and self.mixer.type != "attention":
            raise ValueError("rotary positions apply to the attention mixer only")
        heads = getattr(self.mixer, "n_head", 1)
        if self.mixer.type in ATTENTION_LIKE and self.layer_width % heads:
            raise ValueError(f"layer width {self.layer_width} is not divisible by n_head {heads}")
        if isinstance(self.mixer, S4DSpec) and self.layout == "per_mixer":
            for name in ("expand", "conv_width"):
                if getattr(self.mixer, name) is not None:
                    raise field_error(
                        ("mixer", name),
                        f"S4D in the per_mixer block has no {name}: leave it unset, or use "
                        "block 'gated'",
                    )
        return self


def _s4d_in_gated_block(mixer: Any) -> Any:
    """An S4D mixer spec (a dict or a validated spec) with the gated block's expand and
    conv_width filled where unset; anything else is left for validation to refuse."""
    if isinstance(mixer, S4DSpec):
        return mixer.in_gated_block()
    if isinstance(mixer, dict):
        defaults = {"expand": DEFAULT_EXPAND, "conv_width": DEFAULT_CONV_WIDTH}
        return {**mixer, **{k: v for k, v in defaults.items() if mixer.get(k) is None}}
    return mixer


class FeedForward(nn.Module):
    def __init__(self, spec: SequenceModelSpec) -> None:
        super().__init__()
        width = spec.layer_width
        hidden = max(1, round(spec.ffn_ratio * width))
        self.up = nn.Linear(width, hidden, bias=spec.bias)
        self.down = nn.Linear(hidden, width, bias=spec.bias)
        self.activation = spec.activation
        self.rrelu = nn.RReLU() if spec.activation == "rrelu" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.up(x)  # (B, T, F)
        if self.rrelu is not None:
            hidden = self.rrelu(hidden)
        elif self.activation == "softmax":
            hidden = hidden.softmax(dim=-1)  # a distribution over hidden units, per token
        else:
            hidden = {"relu": F.relu, "gelu": F.gelu, "silu": F.silu}[self.activation](hidden)
        return self.down(hidden)


class Block(nn.Module):
    def __init__(self, spec: SequenceModelSpec) -> None:
        super().__init__()
        width = spec.layer_width
        self.norm_mixer = nn.LayerNorm(width, bias=spec.bias)
        self.mixer = build_mixer(
            spec.mixer, width, block=spec.layout, rotary=spec.positions == "rotary"
        )
        self.norm_ffn = nn.LayerNorm(width, bias=spec.bias) if spec.ffn_ratio > 0 else None
        self.ffn = FeedForward(spec) if spec.ffn_ratio > 0 else None
        self.dropout = nn.Dropout(spec.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.mixer(self.norm_mixer(x)))
        if self.ffn is not None and self.norm_ffn is not None:
            x = x + self.dropout(self.ffn(self.norm_ffn(x)))
        return x


class SequenceModel(nn.Module):
    """Token embeddings → `n_layer` blocks → final norm → vocabulary logits."""

    def __init__(self, spec: SequenceModelSpec, vocab_size: int, block_size: int) -> None:
        super().__init__()
        width = spec.layer_width
        self.spec = spec
        self.block_size = block_size
        self.tok_emb = nn.Embedding(vocab_size, width)
        self.pos_emb = nn.Embedding(block_size, width) if spec.positions == "learned" else None
        self.blocks = nn.ModuleList(Block(spec) for _ in range(spec.n_layer))
        self.norm_out = nn.LayerNorm(width, bias=spec.bias)
        self.head = nn.Linear(width, vocab_size, bias=False)
        if spec.tie_embeddings:
            self.head.weight = self.tok_emb.weight
        if not self.head.weight.is_meta:  # a meta model (parameter counting) has no values
            self._init_weights()

    def _init_weights(self) -> None:
        """GPT-2's initialisation (N(0, 0.02), zero biases) for embeddings, FFNs and
        attention-like mixers; recurrent mixers keep their own, which their dynamics need."""
        keep_mixer_init = self.spec.mixer.type not in ATTENTION_LIKE
        for name, module in self.named_modules():
            if keep_mixer_init and ".mixer" in name:
                continue
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def num_parameters(self) -> int:
        """Trainable parameters, a tied embedding/head matrix counted once."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids → (B, T, V) next-token logits."""
        return self.head(self.hidden_states(idx))

    def hidden_states(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids → (B, T, C) the last block's output after the final norm: what
        the head reads (and what a model with another head, a pointer, reads too)."""
        return self.hidden_states_of(self.tok_emb(idx))

    def hidden_states_of(self, embedded: torch.Tensor) -> torch.Tensor:
        """(B, T, C) input embeddings → (B, T, C) hidden states, positions added here; for
        a model that embeds some positions itself (an image's pixels, say)."""
        seq = embedded.shape[1]
        if seq > self.block_size:
            raise ValueError(f"sequence length {seq} exceeds block_size {self.block_size}")
        x = embedded
        if self.pos_emb is not None:
            x = x + self.pos_emb(torch.arange(seq, device=embedded.device))
        for block in self.blocks:
            x = block(x)
        return self.norm_out(x)


def parameter_count(spec: SequenceModelSpec, vocab_size: int, max_length: int) -> int:
    """Parameters of `SequenceModel(spec, vocab_size, max_length)`, without allocating it.

    The blocks are counted once per model spec on the meta device (with a 1-token
    vocabulary and context) and remembered, so a sweep over data sizes builds nothing;
    the embedding, head and positions, which grow with V and T, are added in closed form.
    """
    width = spec.layer_width
    per_token = width if spec.tie_embeddings else 2 * width  # embedding row (+ head row)
    per_position = width if spec.positions == "learned" else 0
    at_one = _parameters_at_one_token(spec)
    return at_one + (vocab_size - 1) * per_token + (max_length - 1) * per_position


@functools.lru_cache(maxsize=1024)
def _parameters_at_one_token(spec: SequenceModelSpec) -> int:
    # Keyed by the validated spec itself: a JSON round trip would lose whether a spec
    # without a block was stored (the per-mixer layout) or is a new request (gated).
    with torch.device("meta"):
        return SequenceModel(spec, vocab_size=1, block_size=1).num_parameters()
