"""The ridge readout of labels on features, and its training error: the memorization error
E(γ) that `attention_memorization` measures for attention, for the raw tokens and for the
Gaussian-equivalent surrogate.

Features Φ (d, n) hold one column per token, labels y (n,). The readout is
w = (ΦΦᵀ + nγ I_d)⁻¹ Φ y and its error on the labels it was fitted to is

    E(γ) = ‖y − Φᵀw‖²/n = (γ²/n)‖Q y‖²,    Q = (ΦᵀΦ/n + γ I_n)⁻¹

(the residual is y − Φᵀw = γ Q y by the push-through identity). Two facts the kind's
docstring leans on follow from the formula:
  - scale: E(sΦ, γ) = E(Φ, γ/s²), so two feature maps of different size compared at one γ
    see different relative ridges;
  - span: as γ → 0 with d < n, E tends to ‖y − P y‖²/n, P the projection on the row span
    of Φ: only that span matters, not the scale of Φ.

>>> features = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]], dtype=torch.float64)
>>> labels = torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)
>>> readout = RidgeReadout(features, labels)
>>> round(readout.error(1e-12), 6)  # y's part along (1, 1, −1)/√3, off both rows: (1/3)/3
0.111111
>>> round(RidgeReadout(2 * features, labels).error(0.4), 9) == round(readout.error(0.1), 9)
True
"""

from __future__ import annotations

import torch


class RidgeReadout:
    """The ridge readout of labels (n,) on features (d, n), ready for any γ.

    It factors the smaller Gram matrix once (push-through identity): for d < n the primal
    ΦΦᵀ (d, d) and the residual y − Φᵀw; otherwise ΦᵀΦ/n (n, n) and the residual
    γ·(ΦᵀΦ/n + γ I_n)⁻¹ y. Both give the same number; float64 and `solve` keep it accurate
    at γ = 1e-5.
    """

    def __init__(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        self.features = features.to(torch.float64)
        self.labels = labels.to(torch.float64)
        dimension, count = self.features.shape
        self.primal = dimension < count
        if self.primal:
            self.gram = self.features @ self.features.T  # (d, d)
            self.target = self.features @ self.labels  # (d,)
        else:
            self.gram = self.features.T @ self.features / count  # (n, n)
        self.identity = torch.eye(self.gram.shape[0], dtype=torch.float64)

    def error(self, gamma: float) -> float:
        """E(γ) = (γ²/n)‖Q y‖²."""
        count = self.labels.shape[0]
        if self.primal:
            shifted = self.gram + count * gamma * self.identity
            readout_weights = torch.linalg.solve(shifted, self.target)  # (d,)
            residual = self.labels - self.features.T @ readout_weights  # (n,)
        else:
            residual = gamma * torch.linalg.solve(self.gram + gamma * self.identity, self.labels)
        return float(residual.square().sum() / count)
