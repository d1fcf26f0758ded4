"""Batched ensembles: K models of one shape trained as one computation.

The K members' parameters are stacked along a new leading dimension and the model is
evaluated with `torch.vmap(functional_call)`, so one forward/backward and one optimizer
step serve every member. Members may differ in seed (initialisation and data order) and
in learning rate. Each member's numbers equal what it would get trained alone by
`Trainer` (same AdamW arithmetic, same per-member gradient clipping, same batches): a
sweep of seeds or learning rates costs little more than one run.

Dropout is refused: vmap would draw one mask stream for all members, breaking that
equivalence.

Dimensions: K members, B batch, T time, V vocabulary.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, stack_module_state
from torch.nn import functional as F

from core.specs import TrainSpec
from core.training.schedule import learning_rate
from core.training.trainer import IGNORE_INDEX, BatchSampler

ModelBuilder = Callable[[], nn.Module]


@dataclass(frozen=True)
class Member:
    """One ensemble member: its seed and its peak learning rate (min_lr scales with it)."""

    seed: int
    lr: float


class Ensemble:
    """K stacked copies of a model; `forward` maps (K, B, T) ids to (K, B, T, V) logits."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        if any(isinstance(m, nn.Dropout) and m.p > 0 for model in models for m in model.modules()):
            raise ValueError("ensembles need dropout 0: vmap would share one mask stream")
        self.params, self.buffers = stack_module_state(list(models))
        self.size = len(models)
        self.template = copy.deepcopy(models[0])  # only its structure is used
        for module in self.template.modules():
            if hasattr(module, "fused"):
                module.fused = False

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        def member(params: dict, buffers: dict, tokens: torch.Tensor) -> torch.Tensor:
            return functional_call(self.template, (params, buffers), (tokens,))

        return torch.vmap(member)(self.params, self.buffers, idx)

    def member_state(self, index: int) -> dict[str, torch.Tensor]:
        """Member `index`'s parameters, as a state dict for a model of the same shape."""
        return {name: value[index].detach().clone() for name, value in self.params.items()}


class BatchedAdamW:
    """AdamW over stacked parameters with a learning rate per member: (K,) broadcast.

    Follows torch.optim.AdamW's single-tensor arithmetic step for step.
    """

    def __init__(self, params: dict[str, torch.Tensor], spec: TrainSpec) -> None:
        self.params = params
        self.spec = spec
        self.step_count = 0
        self.exp_avg = {n: torch.zeros_like(p) for n, p in params.items()}
        self.exp_avg_sq = {n: torch.zeros_like(p) for n, p in params.items()}

    @torch.no_grad()
    def step(self, lrs: torch.Tensor) -> None:
        """One update; `lrs` is (K,), each member's learning rate this step."""
        self.step_count += 1
        beta1, beta2, eps = self.spec.beta1, self.spec.beta2, 1e-8
        bias1 = 1 - beta1**self.step_count
        bias2_sqrt = math.sqrt(1 - beta2**self.step_count)
        for name, param in self.params.items():
            grad = param.grad
            if grad is None:
                continue
            lr = lrs.to(param.dtype).view(-1, *([1] * (param.dim() - 1)))  # (K, 1, ...)
            param.mul_(1 - lr * self.spec.weight_decay)
            self.exp_avg[name].lerp_(grad, 1 - beta1)
            self.exp_avg_sq[name].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = (self.exp_avg_sq[name].sqrt() / bias2_sqrt).add_(eps)
            param.sub_(lr / bias1 * self.exp_avg[name] / denom)


def clip_per_member(params: dict[str, torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale each member's gradients to global norm ≤ max_norm, as clip_grad_norm_ would
    alone; returns the (K,) norms before clipping."""
    grads = [p.grad for p in params.values() if p.grad is not None]
    squares = torch.stack([g.pow(2).flatten(1).sum(1) for g in grads]).sum(0)  # (K,)
    norms = squares.sqrt()
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for grad in grads:
        grad.mul_(scale.view(-1, *([1] * (grad.dim() - 1))))
    return norms


def member_losses(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Each member's mean next-token loss, in one call: (K, B, T, V), (K, B, T) → (K,).

    Equal to next_token_loss on each member alone (the mean over its counted positions).
    """
    flat = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        targets.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    ).view(targets.shape)
    counted = (targets != IGNORE_INDEX).flatten(1).sum(1)
    return flat.flatten(1).sum(1) / counted


def train_ensemble(
    build_model: ModelBuilder,
    members: Sequence[Member],
    spec: TrainSpec,
    sample_batch: BatchSampler,
    device: torch.device,
) -> tuple[Ensemble, torch.Tensor]:
    """Train every member for `spec.steps`; returns the ensemble and the (K,) final losses.

    Member k is built by `build_model()` right after `torch.manual_seed(seed_k)` and
    draws its batches from a generator seeded with seed_k, exactly as `Trainer` does.
    """
    models = []
    for member in members:
        torch.manual_seed(member.seed)
        models.append(build_model().to(device))
    ensemble = Ensemble(models)
    for param in ensemble.params.values():
        param.requires_grad_(True)
    optimizer = BatchedAdamW(ensemble.params, spec)
    member_specs = [
        spec.model_copy(update={"lr": m.lr, "min_lr": spec.min_lr * m.lr / spec.lr})
        for m in members
    ]
    generators = [torch.Generator().manual_seed(m.seed) for m in members]
    losses = torch.zeros(len(members))
    for step in range(spec.steps):
        batches = [sample_batch(rng, device) for rng in generators]
        inputs = torch.stack([b[0] for b in batches])  # (K, B, T)
        targets = torch.stack([b[1] for b in batches])
        logits = ensemble.forward(inputs)  # (K, B, T, V)
        per_member = member_losses(logits, targets)  # (K,)
        for param in ensemble.params.values():
            param.grad = None
        per_member.sum().backward()  # members share no parameters: gradients stay separate
        if spec.grad_clip is not None:
            clip_per_member(ensemble.params, spec.grad_clip)
        lrs = torch.tensor([learning_rate(step, s) for s in member_specs], dtype=torch.float64)
        optimizer.step(lrs)
        losses = per_member.detach()
    return ensemble, losses
