"""Training the diffusion toy's score network on a point set, on the shared Trainer, and
sampling from it: the opt-in path of `associative_memory`'s diffusion part, where the
score is learned rather than computed exactly from the training points.

One run of that kind trains one network per (K, replicate). Each trains in its own
checkpoint folder below the run's, through `ScopedReporter`, so a requeued run resumes
every network from its own newest checkpoint and skips those already finished.

Dimensions: K training points, D data dimension, M samples.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from pydantic import Field

from core.models.score_net import ScoreNet
from core.reporter import Reporter
from core.spec_model import SpecModel
from core.specs import TrainSpec
from core.training.device import resolve_device
from core.training.scoped_reporter import ScopedReporter
from core.training.score_matching import denoising_objective, dsm_batch, euler_maruyama_samples
from core.training.trainer import Trainer

# ScopedReporter lives in its own module; it is re-exported here for existing imports.
__all__ = ["ScopedReporter", "ScoreTrainingSpec", "sample_score_net", "train_score_net"]


class ScoreTrainingSpec(SpecModel):
    """The learned score: the paper's ScoreNet and VE SDE, trained by denoising score
    matching, sampled by Euler–Maruyama.

    The paper's code trains 800,000 iterations of Adam at lr 1e-4 with batch min(500, K);
    that is days of CPU for a K grid, so the default here is 20,000 steps at lr 1e-3
    (constant, no warmup, no weight decay) and will memorize less at small K than the
    paper's networks: a memlab choice, not the paper's.
    """

    hidden: int = Field(128, ge=8, le=1024, description="Width H of every hidden layer.")
    layers: int = Field(4, ge=2, le=8, description="Linear layers of the trunk before its output.")
    sigma: float = Field(1.0, gt=0, le=100, description="σ of the VE SDE (std at t = 1).")
    embedding_scale: float = Field(
        16.0, gt=0, le=1000, description="Std of the Fourier time embedding's frequencies."
    )
    sampler_steps: int = Field(
        1000, ge=2, le=100_000, description="Euler–Maruyama steps from t = 1 to t_min."
    )
    t_min: float = Field(1e-3, gt=0, lt=1, description="Where sampling stops.")
    train: TrainSpec = TrainSpec(
        steps=20_000,
        batch_size=500,
        lr=1e-3,
        min_lr=1e-3,
        schedule="constant",
        warmup_steps=0,
        grad_clip=None,
        eval_every=20_000,
        checkpoint_every=5_000,
    )


def train_score_net(
    points: torch.Tensor,
    spec: ScoreTrainingSpec,
    reporter: Reporter,
    *,
    seed: int,
    checkpoint_state: dict[str, object],
) -> ScoreNet:
    """A ScoreNet trained on `points` (K, D) by denoising score matching, resumed from the
    newest checkpoint in `reporter.checkpoint_dir()` when one of the same state exists, on
    the device `spec.train.device` asks for (`core.training.device.resolve_device`)."""
    device = resolve_device(spec.train.device)
    generator = torch.Generator().manual_seed(seed)
    net = ScoreNet(
        points.shape[1], spec.hidden, spec.layers, spec.sigma, spec.embedding_scale, generator
    )
    data = points.float()

    def sample_batch(rng: torch.Generator, on: torch.device) -> tuple[torch.Tensor, ...]:
        return dsm_batch(data, spec.train.batch_size, rng, on)

    Trainer(
        net,
        spec.train,
        sample_batch,
        reporter,
        seed=seed,
        device=device,
        checkpoint_state=checkpoint_state,
        objective=denoising_objective(spec.sigma),
    ).fit()
    return net.eval()


def sample_score_net(
    net: ScoreNet,
    spec: ScoreTrainingSpec,
    count: int,
    generator: torch.Generator,
    should_stop: Callable[[], bool] | None = None,
) -> torch.Tensor:
    """`count` samples (M, D) of the trained network's reverse SDE (the paper's sampler:
    the last step's noiseless mean), in float64 on the CPU; RunCancelled when
    `should_stop()` says so. The draws come from `generator` (CPU); the network runs on
    its own device."""
    device = next(net.parameters()).device

    def score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return net(x.to(device).float(), t.to(device).float()).double().cpu()

    data_dim = net.trunk[-1].out_features
    return euler_maruyama_samples(
        score,
        count,
        int(data_dim),
        spec.sigma,
        spec.sampler_steps,
        spec.t_min,
        generator,
        should_stop=should_stop,
    )
