"""Which runs may train together as one batched ensemble (`core.training.group`).

Runs of one sweep that differ only in their kind's `batch_fields` (`seed`, `train.lr` and
`train.min_lr` unless the kind says fewer) build models of one architecture on data of
one generator, so they can share one batched forward,
backward and optimizer step while each keeps its own numbers. `batch_key` says which
runs are alike in everything else; `batch_refusal` says why a spec's runs must train
alone; `training_memory_bytes` sizes a group.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from core.catalog import get_kind
from core.specs import ExperimentSpec, TrainedSpec

# Activation floats kept per token for the backward pass, a rough figure for the small
# models memlab trains (a few layers of width ≤ 256).
ACTIVATION_FLOATS_PER_TOKEN = 256
# float32 weights, their gradients and AdamW's two moments: 4 tensors of 4 bytes each.
BYTES_PER_PARAMETER = 16
DEFAULT_CONTEXT = 256
# Activations that are random in training (torch's RReLU draws each negative slope).
RANDOM_ACTIVATIONS = frozenset({"rrelu"})


def batch_key(spec: ExperimentSpec) -> str:
    """SHA-256 hex of the spec without the fields its kind batches (`batch_fields`): equal
    for two specs exactly when they differ in nothing else (probes, max_wall_s,
    checkpoint_every and device count)."""
    fields = spec.model_dump(mode="json")
    for path in batch_fields(spec):
        *parents, leaf = path.split(".")
        node = fields
        for parent in parents:
            node = node[parent]
            if node is None:  # a null sub-spec (a run without `pool_subset`): nothing to drop
                break
        else:
            node.pop(leaf)
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def batch_fields(spec: ExperimentSpec) -> tuple[str, ...]:
    """The fields in which runs of this spec's kind may differ and still train together."""
    return spec.batch_fields if isinstance(spec, TrainedSpec) else ()


def batch_refusal(spec: ExperimentSpec) -> str | None:
    """Why runs of `spec` cannot train batched, in words a user can act on; None if they can."""
    kind = get_kind(spec.kind)
    if kind.prepare is None:
        return (
            f"kind {spec.kind!r} registers no prepare(), so its runs cannot train in a "
            "batched ensemble; each trains alone"
        )
    for path, rate in _dropout_rates(spec.model_dump(mode="json")):
        if rate > 0:
            return (
                f"{path} is {rate}: the members of a batched ensemble would share one dropout "
                "mask stream, so none would equal its solo run; set it to 0 to batch"
            )
    for path, name in _named_fields(spec.model_dump(mode="json"), "activation"):
        if name in RANDOM_ACTIVATIONS:
            return (
                f"{path} is {name!r}, which draws random slopes while training, as dropout "
                "draws masks: members of a batched ensemble would share one stream (and "
                "torch.func.vmap cannot batch it), so each trains alone"
            )
    return None


def training_memory_bytes(spec: TrainedSpec) -> int:
    """A rough estimate of one member's memory for sizing a group, from the spec alone (no
    data or model is built): 16 bytes per parameter (float32 weights, gradients and two
    AdamW moments) plus 4-byte activations, 256 per token, for one batch of the model's
    context (256 tokens where the spec names none)."""
    context = spec.context_tokens() or DEFAULT_CONTEXT
    activations = 4 * spec.train.batch_size * context * ACTIVATION_FLOATS_PER_TOKEN
    return BYTES_PER_PARAMETER * spec.parameter_count() + activations


def _dropout_rates(fields: Any) -> list[tuple[str, float]]:
    """Every field named `dropout` in a spec's JSON, with its dotted path."""
    return [
        (path, float(value))
        for path, value in _named_fields(fields, "dropout")
        if isinstance(value, int | float)
    ]


def _named_fields(fields: Any, field_name: str, path: str = "") -> list[tuple[str, Any]]:
    """Every field called `field_name` in a spec's JSON, with its dotted path and value."""
    if isinstance(fields, dict):
        found = []
        for name, value in fields.items():
            dotted = f"{path}.{name}" if path else name
            if name == field_name:
                found.append((dotted, value))
            else:
                found.extend(_named_fields(value, field_name, dotted))
        return found
    if isinstance(fields, list):
        return [found for value in fields for found in _named_fields(value, field_name, path)]
    return []
