"""Per-token statistics of a model on a `SequenceSet`, computed once and shared by probes.

For every scored position t of every item: log p(x_t), whether x_t is the argmax, and the
mean μ_t and standard deviation σ_t of log p(v) under the model's own next-token
distribution (Min-K%++). Everything is float64 on the CPU afterwards, so scores are
reproducible whatever device computed the logits.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from core.probes.target import IGNORE_INDEX, SequenceSet


@dataclass(frozen=True)
class TokenStatistics:
    """(N, T) tensors; `scored` marks the positions that count, the rest hold zeros."""

    log_prob: torch.Tensor  # log p(x_t), float64
    is_argmax: torch.Tensor  # bool
    mean_log_prob: torch.Tensor  # μ_t = Σ_v p(v) log p(v)
    std_log_prob: torch.Tensor  # σ_t = sqrt(Σ_v p(v) log² p(v) − μ_t²)
    scored: torch.Tensor  # bool
    # log(p / (1 − p)) of x_t, from the logits: z_x − logsumexp_{v ≠ x} z_v. Computed
    # there, not from log p, because 1 − p rounds to 0 once p is within 1e-16 of 1.
    log_odds: torch.Tensor

    def mean_nll(self) -> torch.Tensor:
        """ℓ(x) per item: mean negative log-likelihood over its scored tokens, (N,)."""
        count = self.scored.sum(1).clamp(min=1)
        return -(self.log_prob * self.scored).sum(1) / count

    def negative_mean_nll(self) -> torch.Tensor:
        """−ℓ(x) per item, (N,): higher = the model fits the item better."""
        return -self.mean_nll()

    def mean_logit_confidence(self) -> torch.Tensor:
        """φ(x) per item: the mean over its scored tokens of log(p / (1 − p)), p = p(x_t),
        (N,). LiRA's statistic: on this logit scale a model's confidence in an item is
        close to Gaussian across models, where p itself piles up near 0 or 1."""
        count = self.scored.sum(1).clamp(min=1)
        return (self.log_odds * self.scored).sum(1) / count

    def token_accuracy(self) -> torch.Tensor:
        """Per item, the fraction of its scored tokens that are the model's argmax, (N,)."""
        count = self.scored.sum(1).clamp(min=1)
        return (self.is_argmax & self.scored).sum(1).double() / count

    def total_nll_bits(self) -> torch.Tensor:
        """Σ_t −log₂ p(x_t) per item over its scored tokens, (N,)."""
        return -(self.log_prob * self.scored).sum(1) / torch.log(torch.tensor(2.0))

    def exact(self) -> torch.Tensor:
        """Per item: every scored token is the argmax (= greedy decoding reproduces it), (N,)."""
        return (self.is_argmax | ~self.scored).all(1) & self.scored.any(1)


@torch.no_grad()
def token_statistics(
    model: nn.Module, items: SequenceSet, batch_size: int = 256
) -> TokenStatistics:
    """Run `model` over `items` in batches and collect the per-token statistics."""
    device = next(model.parameters()).device
    parts: list[tuple[torch.Tensor, ...]] = []
    for start in range(0, len(items), batch_size):
        inputs = items.inputs[start : start + batch_size].to(device)
        targets = items.targets[start : start + batch_size].to(device)
        logits = model(inputs).double()  # (B, T, V)
        log_probs = F.log_softmax(logits, dim=-1)
        scored = targets != IGNORE_INDEX
        safe_targets = targets.clamp(min=0)
        token_log_prob = log_probs.gather(-1, safe_targets[..., None]).squeeze(-1)
        log_odds = _log_odds(logits, safe_targets)
        probs = log_probs.exp()
        mean = (probs * log_probs).sum(-1)
        variance = (probs * log_probs.square()).sum(-1) - mean.square()
        is_argmax = log_probs.argmax(-1) == safe_targets
        std = variance.clamp(min=0).sqrt()
        parts.append(
            (
                token_log_prob.masked_fill(~scored, 0).cpu(),
                (is_argmax & scored).cpu(),
                mean.masked_fill(~scored, 0).cpu(),
                std.masked_fill(~scored, 0).cpu(),
                scored.cpu(),
                log_odds.masked_fill(~scored, 0).cpu(),
            )
        )
    log_prob, is_argmax, mean, std, scored, log_odds = (
        torch.cat(column) for column in zip(*parts, strict=True)
    )
    return TokenStatistics(log_prob, is_argmax, mean, std, scored, log_odds)


def _log_odds(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log(p / (1 − p)) of each target token: z_target − logsumexp of the other logits,
    (B, T) from logits (B, T, V) and targets (B, T).

    >>> _log_odds(torch.tensor([[[40.0, 0.0, 0.0]]], dtype=torch.float64), torch.tensor([[0]]))
    tensor([[39.3069]], dtype=torch.float64)
    """
    target_logit = logits.gather(-1, targets[..., None]).squeeze(-1)
    others = logits.scatter(-1, targets[..., None], float("-inf"))
    return target_logit - torch.logsumexp(others, dim=-1)


def lowest_fraction_mean(
    values: torch.Tensor, scored: torch.Tensor, fraction: float
) -> torch.Tensor:
    """Per row, the mean of the lowest ⌈fraction · n⌉ of its n scored values, (N,).

    >>> lowest_fraction_mean(torch.tensor([[1.0, -3.0, 2.0, -1.0]]), torch.ones(1, 4).bool(), 0.5)
    tensor([-2.], dtype=torch.float64)
    """
    filled = values.double().masked_fill(~scored, float("inf"))
    ordered = filled.sort(dim=1).values  # ascending; unscored positions last
    counts = scored.sum(1)
    keep = torch.ceil(counts.double() * fraction).long().clamp(min=1)
    columns = torch.arange(values.shape[1])[None, :]
    chosen = columns < keep[:, None]
    total = ordered.masked_fill(~chosen, 0.0).sum(1)
    result = total / keep.double()
    return result.masked_fill(counts == 0, float("nan"))


def zlib_bits(texts: tuple[str, ...]) -> torch.Tensor:
    """Length in bits of each text after zlib compression (level 9), (N,) float64."""
    return torch.tensor(
        [8.0 * len(zlib.compress(text.encode("utf-8"), 9)) for text in texts], dtype=torch.float64
    )
