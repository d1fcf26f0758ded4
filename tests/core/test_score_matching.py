"""Denoising score matching, the Euler–Maruyama sampler and the toy's score network,
checked against the exact score of a point set."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from core.models.score_net import ScoreNet
from core.reporter import InMemoryReporter, RunCancelled
from core.training.score_matching import (
    denoising_objective,
    dsm_batch,
    empirical_score,
    euler_maruyama_samples,
)
from core.training.score_training import (
    ScopedReporter,
    ScoreTrainingSpec,
    sample_score_net,
    train_score_net,
)

SIGMA = 1.0


def _circle(k: int) -> torch.Tensor:
    angles = torch.arange(k, dtype=torch.float64) * 2 * math.pi / k
    return torch.stack([angles.cos(), angles.sin()], dim=-1)  # (K, 2)


def test_the_empirical_score_is_the_gradient_of_the_noised_mixtures_log_density() -> None:
    points = _circle(5)
    x = torch.tensor([[0.3, -0.2], [1.5, 0.4]], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0.05, 0.6], dtype=torch.float64)
    variance = (SIGMA**2 * t)[:, None]
    log_density = torch.logsumexp(-torch.cdist(x, points).square() / (2 * variance), dim=-1)
    (gradient,) = torch.autograd.grad(log_density.sum(), x)
    assert torch.allclose(empirical_score(points, SIGMA)(x.detach(), t), gradient, atol=1e-10)


class _ExactScore(nn.Module):
    def __init__(self, points: torch.Tensor) -> None:
        super().__init__()
        self.score = empirical_score(points, SIGMA)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.score(x, t)


def test_the_dsm_loss_is_zero_for_the_true_score_of_one_point_and_not_for_another() -> None:
    point = torch.tensor([[0.6, 0.8]], dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    batch = dsm_batch(point.repeat(64, 1), 64, generator, torch.device("cpu"))
    objective = denoising_objective(SIGMA)
    assert float(objective(_ExactScore(point), batch)) < 1e-20
    wrong = point + 0.5
    assert float(objective(_ExactScore(wrong), batch)) > 0.1


def test_the_exact_score_sampled_to_small_t_returns_training_points() -> None:
    """The pitfall the kind's docstring names: the exact empirical score memorizes. With
    the paper's 1,000 steps down to t = 1e-3 the last step lands on a training point."""
    points = _circle(3)
    samples = euler_maruyama_samples(
        empirical_score(points, SIGMA), 200, 2, SIGMA, 1000, 1e-3, torch.Generator().manual_seed(1)
    )
    nearest = torch.cdist(samples, points).min(dim=-1).values
    assert float(nearest.max()) < 1e-3


def test_the_noisy_state_at_t_min_has_the_marginal_s_variance() -> None:
    """One point at the origin: p_t = N(0, σ²t), and the reverse SDE run with its exact
    score over the steps − 1 intervals to t_min leaves states of variance σ²·t_min (per
    coordinate; 4,000 × 2 draws, the sampling error of the variance is about 0.0016)."""
    origin = torch.zeros(1, 2, dtype=torch.float64)
    noisy = euler_maruyama_samples(
        empirical_score(origin, SIGMA),
        4000,
        2,
        SIGMA,
        400,
        0.1,
        torch.Generator().manual_seed(3),
        noisy_at_t_min=True,
    )
    variance = float(noisy.square().mean())
    assert abs(variance - 0.1) < 4 * 0.1 * math.sqrt(2 / 8000) + 0.002


def test_the_sampler_stops_when_asked() -> None:
    checks: list[int] = []

    def should_stop() -> bool:
        checks.append(1)
        return len(checks) >= 2

    score = empirical_score(_circle(3), SIGMA)
    with pytest.raises(RunCancelled):
        euler_maruyama_samples(
            score, 10, 2, SIGMA, 500, 1e-2, torch.Generator(), should_stop=should_stop
        )
    assert len(checks) == 2  # asked at steps 50 and 100


def test_a_score_net_is_seeded_and_learns_to_lower_the_dsm_loss() -> None:
    points = _circle(2).float()

    def net() -> ScoreNet:
        return ScoreNet(2, 32, 2, SIGMA, 4.0, torch.Generator().manual_seed(3))

    model = net()
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), net().state_dict().values(), strict=True)
    )
    objective = denoising_objective(SIGMA)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(4)
    held_out = [
        dsm_batch(points.repeat(256, 1), 512, generator, torch.device("cpu")) for _ in range(4)
    ]

    def loss() -> float:
        with torch.no_grad():
            return sum(float(objective(model, batch)) for batch in held_out) / len(held_out)

    before = loss()
    for _ in range(300):
        optimizer.zero_grad()
        objective(
            model, dsm_batch(points.repeat(64, 1), 128, generator, torch.device("cpu"))
        ).backward()
        optimizer.step()
    assert loss() < 0.7 * before


def _tiny_training() -> ScoreTrainingSpec:
    return ScoreTrainingSpec.model_validate(
        {
            "hidden": 16,
            "layers": 2,
            "sampler_steps": 50,
            "train": {"steps": 30, "checkpoint_every": 10, "batch_size": 4},
        }
    )


def _scoped(inner: InMemoryReporter, folder: Path) -> ScopedReporter:
    return ScopedReporter(inner, folder, prefix="K2", start=0.5, span=0.25)


def test_a_score_net_trained_in_its_own_folder_resumes_to_the_same_weights(tmp_path: Path) -> None:
    spec, points = _tiny_training(), _circle(2)
    state = {"spec_hash": "tiny", "K": 2}
    whole = InMemoryReporter(directory=tmp_path / "whole")
    uninterrupted = train_score_net(
        points, spec, _scoped(whole, tmp_path / "whole" / "K2"), seed=5, checkpoint_state=state
    )
    assert all(0.5 <= f <= 0.75 for f, _ in whole.progress_log)
    assert {key for _, key, _ in whole.metrics} >= {"K2/train/loss"}

    folder = tmp_path / "stopped" / "K2"
    with pytest.raises(RunCancelled):
        train_score_net(
            points,
            spec,
            _scoped(InMemoryReporter(stop_after_checks=15), folder),
            seed=5,
            checkpoint_state=state,
        )
    assert any(folder.iterdir())  # its checkpoints, in its own folder
    resumed = train_score_net(
        points, spec, _scoped(InMemoryReporter(), folder), seed=5, checkpoint_state=state
    )
    for ours, theirs in zip(
        resumed.state_dict().values(), uninterrupted.state_dict().values(), strict=True
    ):
        assert torch.equal(ours, theirs)
    samples = sample_score_net(resumed, spec, 20, torch.Generator().manual_seed(0))
    assert samples.shape == (20, 2) and torch.isfinite(samples).all()
