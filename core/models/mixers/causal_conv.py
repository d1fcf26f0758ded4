"""Causal depthwise 1-D convolution over time, as S6 and Mamba-2 apply before their scan.

Equal to `nn.Conv1d(E, E, K, groups=E, padding=K − 1)` cut to the first T outputs, but
written as K shifted multiply-adds on (B, T, E): for the small K these blocks use (4),
that is several times faster on CPU than the depthwise convolution kernel, whose backward
pass dominated the selective mixers' step time (bench/mixers.py).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def causal_depthwise_conv(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """y_t[e] = bias[e] + Σ_k weight[e, 0, k] · x_{t − (K − 1) + k}[e], x before t = 0 is 0.

    Args:
        x: (B, T, E).   weight: (E, 1, K), an `nn.Conv1d` depthwise weight.   bias: (E,).
    Returns:
        (B, T, E).
    """
    kernel, seq = weight.shape[-1], x.shape[1]
    padded = F.pad(x, (0, 0, kernel - 1, 0))  # (B, T + K − 1, E), zeros before the start
    taps = weight[:, 0].t()  # (K, E)
    y = padded[:, kernel - 1 :] * taps[kernel - 1]
    for k in range(kernel - 1):
        y = torch.addcmul(y, padded[:, k : k + seq], taps[k])
    return y if bias is None else y + bias
