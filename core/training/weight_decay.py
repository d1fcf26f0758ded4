"""Which parameters AdamW's weight decay applies to: the one statement of the rule that
`TrainSpec.weight_decay_on` names, used by the Trainer and by the batched ensembles alike.

"matrices" (the default of new requests; minGPT's rule): decay only the weight of a
linear layer (`nn.Linear`, a weight matrix) or of a convolution (`nn.Conv1d/2d/3d`, a
kernel). Everything else gets none: norm weights and biases, every bias, embeddings
(token and position tables, and a head tied to the token table, which is the same tensor),
and parameters a mixer holds directly, such as the state-space parameters of recurrent
mixers (A logs, D, Δ biases, S4D's Δ, A and C).

"all" (specs stored before the field existed): every parameter is decayed.

Why by module type and not by shape: nanoGPT decays every parameter with ≥ 2 dimensions,
which in a transformer is the linear weights and also the embeddings (minGPT, which it
replaced, excluded embeddings by module type, as here). Here S4D keeps its A as a (C, M)
tensor and its C as (C, M, 2), and S6 its A log as (E, N): a shape rule would decay
state-space dynamics that are no weight matrix, and shrinking A's log towards zero changes
how fast the state forgets rather than regularising a map. The module a parameter belongs
to says what it is; its shape does not.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from core.specs import WeightDecayOn

# Layers whose `weight` is a map from inputs to outputs (matrix or kernel): the only
# parameters decayed under "matrices".
DECAYED_LAYERS: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def decayed_parameter_names(model: nn.Module, on: WeightDecayOn) -> frozenset[str]:
    """Names, as `model.named_parameters()` gives them (a tied tensor once), of the
    parameters that weight decay applies to under the rule `on`."""
    named = dict(model.named_parameters())
    if on == "all":
        return frozenset(named)
    matrices = {
        id(module.weight)
        for module in model.modules()
        if isinstance(module, DECAYED_LAYERS) and isinstance(module.weight, nn.Parameter)
    }
    # A head tied to the token embedding holds the embedding's tensor: it stays undecayed,
    # as the embedding it is.
    embeddings = {
        id(module.weight) for module in model.modules() if isinstance(module, nn.Embedding)
    }
    return frozenset(name for name, param in named.items() if id(param) in matrices - embeddings)


def adamw_parameter_groups(
    model: nn.Module, weight_decay: float, on: WeightDecayOn
) -> list[dict[str, Any]]:
    """AdamW's parameter groups for `model`: the decayed parameters with `weight_decay`,
    the rest with none; each group keeps the order of `model.named_parameters()`.

    Under "all" there is one group holding every parameter, as the optimizer was built
    before the rule existed, so the optimizer state of old checkpoints lines up.
    """
    named = list(model.named_parameters())
    if on == "all":
        return [{"params": [param for _, param in named], "weight_decay": weight_decay}]
    decayed = decayed_parameter_names(model, on)
    groups = [
        {"params": [p for name, p in named if name in decayed], "weight_decay": weight_decay},
        {"params": [p for name, p in named if name not in decayed], "weight_decay": 0.0},
    ]
    return [group for group in groups if group["params"]]
