"""Batched ensembles: K models of one shape trained as one computation.

The K members' parameters live in one (K, P) buffer, each parameter a (K, ...) view of
it, so one forward/backward and one optimizer step serve every member. A SequenceModel
with softmax attention runs through explicit batched layers (`bmm`/`baddbmm` on stacked
weights, the fused attention kernel over K · B sequences); any other model runs through
`torch.vmap(functional_call)`. AdamW and per-member clipping then work on the whole
(K, P) buffer in a handful of operations.

Members may differ in seed (initialisation and data order) and in their learning rate's
peak and floor (`lr`, `min_lr`). Each
member's numbers equal what it would get trained alone by `Trainer` (same AdamW
arithmetic and weight-decay rule, same per-member gradient clipping, same batches) up to
floating-point rounding: a sweep of seeds or learning rates costs little more than one run.

Dropout is refused: a batched computation would draw one mask stream for all members,
breaking that equivalence.

Dimensions: K members, B batch, T time, C width, H heads, D head width, V vocabulary,
P parameters per member.
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

from core.models.mixers.attention import SoftmaxAttention, apply_rotary
from core.models.sequence_model import SequenceModel
from core.models.transformer import Decoder
from core.specs import TrainSpec, WeightDecayOn
from core.training.schedule import learning_rate
from core.training.trainer import IGNORE_INDEX, BatchSampler
from core.training.weight_decay import decayed_parameter_names

ModelBuilder = Callable[[], nn.Module]
Params = dict[str, torch.Tensor]

_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu,
    "gelu": F.gelu,
    "silu": F.silu,
    "softmax": lambda hidden: hidden.softmax(dim=-1),
}


@dataclass(frozen=True)
class Member:
    """One ensemble member: its seed, and the peak and floor of its learning rate."""

    seed: int
    lr: float
    min_lr: float


def ensemble_refusal(models: Sequence[nn.Module]) -> str | None:
    """Why `models` cannot be stacked into one ensemble, or None if they can."""
    if any(isinstance(m, nn.Dropout) and m.p > 0 for model in models for m in model.modules()):
        return "ensembles need dropout 0: the members would share one mask stream"
    return None


def batched_layers_apply(model: nn.Module) -> bool:
    """Whether `model` can run through the explicit batched layers (else vmap is used):
    a SequenceModel whose mixers are all softmax attention, with a deterministic FFN, or
    the character-level `Decoder`. (Under vmap, the fused attention kernel falls back to
    a loop over members.)"""
    if isinstance(model, Decoder):
        return True
    if not isinstance(model, SequenceModel) or model.spec.activation not in _ACTIVATIONS:
        return False
    return all(isinstance(block.mixer, SoftmaxAttention) for block in model.blocks)


class Ensemble:
    """K stacked copies of a model; `forward` maps (K, B, T) ids to (K, B, T, V) logits.

    `flat` is the (K, P) buffer holding every member's parameters; `params` maps each
    parameter name to its (K, ...) view of it, a leaf that autograd fills with gradients.
    """

    def __init__(self, models: Sequence[nn.Module], *, batched_layers: bool = True) -> None:
        if (refusal := ensemble_refusal(models)) is not None:
            raise ValueError(refusal)
        stacked, self.buffers = stack_module_state(list(models))
        self.size = len(models)
        self.template = copy.deepcopy(models[0])  # only its structure is used
        # The fused attention kernel has no vmap batching rule: the vmap path needs the
        # explicit form. The batched layers call the fused kernel themselves.
        for module in self.template.modules():
            if hasattr(module, "fused"):
                module.fused = False
        self.batched_layers = batched_layers and batched_layers_apply(self.template)
        with torch.no_grad():
            self.flat = torch.cat([value.flatten(1) for value in stacked.values()], dim=1)
        self.params: Params = {}
        offset = 0
        for name, value in stacked.items():
            count = value[0].numel()
            view = self.flat[:, offset : offset + count].view(value.shape)
            self.params[name] = view.requires_grad_(True)
            offset += count

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        if self.batched_layers and isinstance(self.template, Decoder):
            return stacked_transformer_forward(self.template, self.params, idx)
        if self.batched_layers:
            assert isinstance(self.template, SequenceModel)
            return stacked_decoder_forward(self.template, self.params, idx)

        def member(params: Params, buffers: Params, tokens: torch.Tensor) -> torch.Tensor:
            return functional_call(self.template, (params, buffers), (tokens,))

        return torch.vmap(member)(self.params, self.buffers, idx)

    def flat_grad(self) -> torch.Tensor:
        """Every member's gradient as one (K, P) tensor, in the order of `flat`."""
        return torch.cat(
            [
                torch.zeros_like(p).flatten(1) if p.grad is None else p.grad.flatten(1)
                for p in self.params.values()
            ],
            dim=1,
        )

    def decay_mask(self, on: WeightDecayOn) -> torch.Tensor:
        """A (P,) bool mask over each row of `flat`: True on the entries of parameters that
        weight decay applies to under the rule `on` (`core.training.weight_decay`)."""
        decayed = decayed_parameter_names(self.template, on)
        return torch.cat(
            [
                torch.full((value[0].numel(),), name in decayed, dtype=torch.bool)
                for name, value in self.params.items()
            ]
        ).to(self.flat.device)

    def member_state(self, index: int) -> dict[str, torch.Tensor]:
        """Member `index`'s parameters, as a state dict for a model of the same shape."""
        return {name: value[index].detach().clone() for name, value in self.params.items()}


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """K linear layers at once: x (K, N, in), weight (K, out, in), bias (K, out) → (K, N, out)."""
    if bias is None:
        return torch.bmm(x, weight.transpose(1, 2))
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))


def _layer_norm(x: torch.Tensor, norm: nn.LayerNorm, params: Params, prefix: str) -> torch.Tensor:
    """K layer norms at once over (K, N, C), each with its member's weight and bias."""
    normed = F.layer_norm(x, norm.normalized_shape, eps=norm.eps)
    weight = params[f"{prefix}.weight"].unsqueeze(1)  # (K, 1, C)
    bias = params.get(f"{prefix}.bias")
    return normed * weight if bias is None else torch.addcmul(bias.unsqueeze(1), normed, weight)


def _attention(
    x: torch.Tensor,
    params: Params,
    prefix: str,
    batch: int,
    n_head: int,
    *,
    rotary: bool = False,
    out: str = "out",
) -> torch.Tensor:
    """K members' causal attention over (K, B · T, C), as one fused call over K · B rows;
    `{prefix}.qkv` projects in and `{prefix}.{out}` projects back."""
    members, tokens, width = x.shape
    seq = tokens // batch
    qkv = _linear(x, params[f"{prefix}.qkv.weight"], params.get(f"{prefix}.qkv.bias"))
    q, k, v = qkv.view(members * batch, seq, 3 * width).split(width, dim=-1)
    q, k, v = (t.view(members * batch, seq, n_head, -1).transpose(1, 2) for t in (q, k, v))
    if rotary:
        q, k = apply_rotary(q), apply_rotary(k)
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (K · B, H, T, D)
    y = y.transpose(1, 2).reshape(members, tokens, width)
    return _linear(y, params[f"{prefix}.{out}.weight"], params.get(f"{prefix}.{out}.bias"))


def _embed(table: torch.Tensor, positions: torch.Tensor | None, idx: torch.Tensor) -> torch.Tensor:
    """K members' token (+ learned position) embeddings: table (K, V, C), positions
    (K, T_max, C) or None, idx (K, B, T) → (K, B · T, C)."""
    members, batch, seq = idx.shape
    vocab, width = table.shape[1:]
    offsets = torch.arange(members, device=idx.device).view(members, 1, 1) * vocab
    x = F.embedding(idx + offsets, table.reshape(members * vocab, width))  # (K, B, T, C)
    if positions is not None:
        x = x + positions[:, None, :seq]
    return x.reshape(members, batch * seq, width)


def stacked_decoder_forward(
    model: SequenceModel, params: Params, idx: torch.Tensor
) -> torch.Tensor:
    """SequenceModel.forward for K members at once: (K, B, T) ids → (K, B, T, V) logits.

    `model` gives the structure (spec, norms' eps); the numbers come from `params`,
    stacked (K, ...) tensors named as in `model.named_parameters()`.
    """
    members, batch, seq = idx.shape
    if seq > model.block_size:
        raise ValueError(f"sequence length {seq} exceeds block_size {model.block_size}")
    table = params["tok_emb.weight"]  # (K, V, C)
    vocab = table.shape[1]
    positions = params["pos_emb.weight"] if model.pos_emb is not None else None
    x = _embed(table, positions, idx)  # (K, B · T, C)
    activation = _ACTIVATIONS[model.spec.activation]
    for index, block in enumerate(model.blocks):
        prefix = f"blocks.{index}"
        mixer = block.mixer
        assert isinstance(mixer, SoftmaxAttention)
        mixed = _layer_norm(x, block.norm_mixer, params, f"{prefix}.norm_mixer")
        x = x + _attention(
            mixed, params, f"{prefix}.mixer", batch, mixer.n_head, rotary=mixer.rotary
        )
        if block.ffn is not None and block.norm_ffn is not None:
            hidden = _layer_norm(x, block.norm_ffn, params, f"{prefix}.norm_ffn")
            up = f"{prefix}.ffn.up"
            hidden = activation(_linear(hidden, params[f"{up}.weight"], params.get(f"{up}.bias")))
            down = f"{prefix}.ffn.down"
            x = x + _linear(hidden, params[f"{down}.weight"], params.get(f"{down}.bias"))
    x = _layer_norm(x, model.norm_out, params, "norm_out")
    head = params.get("head.weight", table)  # tied embeddings share the token table
    return torch.bmm(x, head.transpose(1, 2)).view(members, batch, seq, vocab)


def stacked_transformer_forward(model: Decoder, params: Params, idx: torch.Tensor) -> torch.Tensor:
    """Decoder.forward (the character-level GPT of capacity_tradeoff) for K members at
    once: (K, B, T) ids → (K, B, T, V) logits, the numbers from stacked `params`."""
    members, batch, seq = idx.shape
    if seq > model.block_size:
        raise ValueError(f"sequence length {seq} exceeds block_size {model.block_size}")
    table = params["tok_emb.weight"]  # (K, V, C); the head is tied to it
    vocab = table.shape[1]
    x = _embed(table, params["pos_emb.weight"], idx)  # (K, B · T, C)
    for index, block in enumerate(model.blocks):
        prefix = f"blocks.{index}"
        attended = _layer_norm(x, block.ln_attn, params, f"{prefix}.ln_attn")
        x = x + _attention(attended, params, f"{prefix}.attn", batch, block.attn.n_head, out="proj")
        hidden = _layer_norm(x, block.ln_ffn, params, f"{prefix}.ln_ffn")
        up, down = f"{prefix}.ffn.up", f"{prefix}.ffn.down"
        hidden = F.gelu(_linear(hidden, params[f"{up}.weight"], params.get(f"{up}.bias")))
        x = x + _linear(hidden, params[f"{down}.weight"], params.get(f"{down}.bias"))
    x = _layer_norm(x, model.ln_out, params, "ln_out")
    return torch.bmm(x, table.transpose(1, 2)).view(members, batch, seq, vocab)


class BatchedAdamW:
    """AdamW over the ensemble's (K, P) buffer with a learning rate per member.

    Follows torch.optim.AdamW's arithmetic step for step; every member's state is a row
    of the (K, P) moments, so one update is a handful of whole-buffer operations. Weight
    decay applies where the (P,) `decay_mask` is True (`Ensemble.decay_mask`), as the
    Trainer's parameter groups apply it.
    """

    def __init__(self, flat: torch.Tensor, spec: TrainSpec, decay_mask: torch.Tensor) -> None:
        """`spec` gives betas and weight decay, which every member shares; each member's
        learning rate comes with each `step`."""
        self.flat = flat
        self.spec = spec
        self.decay_mask = decay_mask  # (P,) bool
        self.step_count = 0
        self.exp_avg = torch.zeros_like(flat)  # (K, P)
        self.exp_avg_sq = torch.zeros_like(flat)  # (K, P)

    @torch.no_grad()
    def step(self, grad: torch.Tensor, lrs: torch.Tensor) -> None:
        """One update from the (K, P) gradient; `lrs` is (K,) float64, each member's rate."""
        self.step_count += 1
        beta1, beta2, eps = self.spec.beta1, self.spec.beta2, 1e-8
        bias1 = 1 - beta1**self.step_count
        bias2_sqrt = math.sqrt(1 - beta2**self.step_count)
        # Per-member factors in float64 first, as AdamW forms them from Python floats.
        decay = (1 - lrs * self.spec.weight_decay).to(self.flat.dtype).view(-1, 1)  # (K, 1)
        step_size = (lrs / bias1).to(self.flat.dtype).view(-1, 1)
        # An undecayed parameter is multiplied by exactly 1, as AdamW does a group whose
        # weight_decay is 0.
        self.flat.mul_(torch.where(self.decay_mask, decay, 1.0))  # (K, P)
        self.exp_avg.lerp_(grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (self.exp_avg_sq.sqrt() / bias2_sqrt).add_(eps)
        self.flat.sub_(self.exp_avg.div(denom).mul_(step_size))


def clip_per_member(grad: torch.Tensor, max_norm: float) -> torch.Tensor:
    """Scale each member's row of the (K, P) gradient to norm ≤ max_norm, as
    clip_grad_norm_ would alone; returns the (K,) norms before clipping."""
    norms = torch.linalg.vector_norm(grad, dim=1)
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    grad.mul_(scale.unsqueeze(1))
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


def ensemble_losses(
    ensemble: Ensemble, batches: Sequence[tuple[torch.Tensor, ...]]
) -> torch.Tensor:
    """Each member's next-token loss on its own (inputs, targets) batch, each (B, T): (K,)."""
    inputs = torch.stack([batch[0] for batch in batches])  # (K, B, T)
    targets = torch.stack([batch[1] for batch in batches])
    return member_losses(ensemble.forward(inputs), targets)


def ensemble_update(
    ensemble: Ensemble,
    optimizer: BatchedAdamW,
    losses: torch.Tensor,
    lrs: torch.Tensor,
    grad_clip: float | None,
) -> None:
    """One optimizer step for every member from its (K,) `losses`: backward, each
    member's gradient clipped alone, AdamW at each member's (K,) float64 rate `lrs`."""
    for param in ensemble.params.values():
        param.grad = None
    losses.sum().backward()  # members share no parameters: gradients stay separate
    grad = ensemble.flat_grad()  # (K, P)
    if grad_clip is not None:
        clip_per_member(grad, grad_clip)
    optimizer.step(grad, lrs.to(ensemble.flat.device))


def train_ensemble(
    build_model: ModelBuilder,
    members: Sequence[Member],
    spec: TrainSpec,
    sample_batch: BatchSampler,
    device: torch.device,
    *,
    batched_layers: bool = True,
) -> tuple[Ensemble, torch.Tensor]:
    """Train every member for `spec.steps`, each with its own `lr` and `min_lr` over the
    rest of `spec`; returns the ensemble and the (K,) final losses.

    Member k is built by `build_model()` right after `torch.manual_seed(seed_k)` and
    draws its batches from a generator seeded with seed_k, exactly as `Trainer` does.
    `batched_layers=False` forces the generic vmap path (for comparison and tests).
    """
    models = []
    for member in members:
        torch.manual_seed(member.seed)
        models.append(build_model().to(device))
    ensemble = Ensemble(models, batched_layers=batched_layers)
    optimizer = BatchedAdamW(ensemble.flat, spec, ensemble.decay_mask(spec.weight_decay_scope))
    member_specs = [spec.model_copy(update={"lr": m.lr, "min_lr": m.min_lr}) for m in members]
    generators = [torch.Generator().manual_seed(m.seed) for m in members]
    losses = torch.zeros(len(members))
    for step in range(spec.steps):
        per_member = ensemble_losses(ensemble, [sample_batch(rng, device) for rng in generators])
        lrs = torch.tensor([learning_rate(step, s) for s in member_specs], dtype=torch.float64)
        ensemble_update(ensemble, optimizer, per_member, lrs, spec.grad_clip)
        losses = per_member.detach()
    return ensemble, losses
