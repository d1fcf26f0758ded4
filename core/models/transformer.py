"""A small causal transformer decoder (GPT-style, pre-norm) for character- and token-level tasks.

Dimension names used in comments:
    B  batch size
    T  sequence length (≤ block_size)
    C  model width (n_embd)
    H  attention heads; C = H · D with D the head width
    V  vocabulary size
"""

from __future__ import annotations

import math

import torch
from pydantic import Field, model_validator
from torch import nn
from torch.nn import functional as F

from core.spec_model import SpecModel


class DecoderSpec(SpecModel):
    """Shape of a decoder; vocabulary and context length come from the data, not the user."""

    n_layer: int = Field(1, ge=1, le=48)
    n_head: int = Field(1, ge=1, le=64)
    n_embd: int = Field(28, ge=1, le=4096, description="Model width C.")
    mlp_ratio: float = Field(1.0, gt=0, le=16, description="FFN width as a multiple of n_embd.")
    dropout: float = Field(0.0, ge=0, lt=1)
    bias: bool = True

    @model_validator(mode="after")
    def _heads_divide_width(self) -> DecoderSpec:
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        return self


def parameter_count(spec: DecoderSpec, vocab_size: int, block_size: int) -> int:
    """Parameters of `Decoder(spec, vocab_size, block_size)`, without building it."""
    width, bias = spec.n_embd, int(spec.bias)
    hidden = max(1, round(spec.mlp_ratio * width))
    norm = width * (1 + bias)
    attention = 3 * width * width + 3 * width * bias + width * width + width * bias
    ffn = width * hidden + hidden * bias + hidden * width + width * bias
    per_layer = 2 * norm + attention + ffn
    return vocab_size * width + block_size * width + spec.n_layer * per_layer + norm


class CausalSelfAttention(nn.Module):
    def __init__(self, spec: DecoderSpec) -> None:
        super().__init__()
        self.n_head = spec.n_head
        self.dropout = spec.dropout
        self.qkv = nn.Linear(spec.n_embd, 3 * spec.n_embd, bias=spec.bias)
        self.proj = nn.Linear(spec.n_embd, spec.n_embd, bias=spec.bias)
        self.resid_dropout = nn.Dropout(spec.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, width = x.shape  # (B, T, C)
        q, k, v = self.qkv(x).split(width, dim=2)
        # (B, T, C) -> (B, H, T, D)
        q, k, v = (t.view(batch, seq, self.n_head, -1).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )
        y = y.transpose(1, 2).contiguous().view(batch, seq, width)  # (B, T, C)
        return self.resid_dropout(self.proj(y))


class FeedForward(nn.Module):
    def __init__(self, spec: DecoderSpec) -> None:
        super().__init__()
        hidden = max(1, round(spec.mlp_ratio * spec.n_embd))
        self.up = nn.Linear(spec.n_embd, hidden, bias=spec.bias)
        self.down = nn.Linear(hidden, spec.n_embd, bias=spec.bias)
        self.dropout = nn.Dropout(spec.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down(F.gelu(self.up(x))))


class Block(nn.Module):
    def __init__(self, spec: DecoderSpec) -> None:
        super().__init__()
        self.ln_attn = nn.LayerNorm(spec.n_embd, bias=spec.bias)
        self.attn = CausalSelfAttention(spec)
        self.ln_ffn = nn.LayerNorm(spec.n_embd, bias=spec.bias)
        self.ffn = FeedForward(spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_attn(x))
        return x + self.ffn(self.ln_ffn(x))


class Decoder(nn.Module):
    """Token + learned position embeddings, `n_layer` blocks, a final norm and a tied head."""

    def __init__(self, spec: DecoderSpec, vocab_size: int, block_size: int) -> None:
        super().__init__()
        self.spec = spec
        self.vocab_size = vocab_size
        self.block_size = block_size
        self.tok_emb = nn.Embedding(vocab_size, spec.n_embd)
        self.pos_emb = nn.Embedding(block_size, spec.n_embd)
        self.drop = nn.Dropout(spec.dropout)
        self.blocks = nn.ModuleList(Block(spec) for _ in range(spec.n_layer))
        self.ln_out = nn.LayerNorm(spec.n_embd, bias=spec.bias)
        self.head = nn.Linear(spec.n_embd, vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight  # weight tying, as in GPT-2
        self.apply(self._init_weights)
        # GPT-2's scaled init of residual projections keeps the residual stream's variance flat.
        for name, param in self.named_parameters():
            if name.endswith(("attn.proj.weight", "ffn.down.weight")):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * spec.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_parameters(self) -> int:
        """Trainable parameters, counting the tied embedding/head matrix once."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Next-token logits.

        Args:
            idx: (B, T) token ids, T ≤ block_size.
        Returns:
            (B, T, V) logits for the token after each position.
        """
        seq = idx.shape[1]
        if seq > self.block_size:
            raise ValueError(f"sequence length {seq} exceeds block_size {self.block_size}")
        positions = torch.arange(seq, device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(positions))  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_out(x))  # (B, T, V)


@torch.no_grad()
def greedy_decode(
    model: Decoder, prompts: torch.Tensor, max_new_tokens: int, stop_token: int | None = None
) -> torch.Tensor:
    """Extend equal-length prompts by argmax decoding.

    Args:
        prompts: (B, T0) token ids.
        max_new_tokens: tokens to append; rows that emitted `stop_token` keep emitting it.
    Returns:
        (B, N) generated ids, N ≤ max_new_tokens (it stops early once every row stopped).
    """
    model.eval()
    tokens = prompts
    finished = torch.zeros(prompts.shape[0], dtype=torch.bool, device=prompts.device)
    generated = []
    for _ in range(max_new_tokens):
        context = tokens[:, -model.block_size :]
        next_token = model(context)[:, -1, :].argmax(dim=-1)  # (B,)
        if stop_token is not None:
            next_token = torch.where(finished, torch.full_like(next_token, stop_token), next_token)
            finished |= next_token == stop_token
        generated.append(next_token)
        tokens = torch.cat([tokens, next_token[:, None]], dim=1)
        if stop_token is not None and bool(finished.all()):
            break
    return torch.stack(generated, dim=1)
