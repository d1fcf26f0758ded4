"""`extraction`: k-extractable memorization (Carlini et al. 2022) with the Pythia score.

Prompt with the first k tokens of a training sequence, decode m tokens greedily, and
compare them with the true continuation: M = fraction of the m tokens that match; the
sequence is "memorized" iff M = 1. Sequences shorter than k + m are skipped (and
counted). Held-out sequences from the same generator, where there are any, give the
rate at which the continuation is simply predictable.

Example: the training line "Capital of Velmora is Drask" with k = 16 prompts
"Capital of Velmo" and asks for m = 8 more characters, "ra is Dr".
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field

from core.probes.exact_recall import recall_by_repeats
from core.probes.features import Feature
from core.probes.registry import ProbeInputs, register_probe
from core.probes.spec import ProbeSpec
from core.probes.target import IGNORE_INDEX, ProbeTarget, SequenceSet
from core.reporter import Reporter
from core.specs import ExperimentSpec

_HISTOGRAM_BINS = 10


class ExtractionSpec(ProbeSpec):
    kind: Literal["extraction"] = "extraction"
    prefix_tokens: int = Field(8, ge=1, le=4096, description="k: prompt length in tokens.")
    continuation_tokens: int = Field(8, ge=1, le=4096, description="m: tokens to decode.")
    max_items: int = Field(5000, ge=1, le=1_000_000)

    needs: ClassVar[frozenset[Feature]] = frozenset({Feature.generation})

    def refusal(self, experiment: ExperimentSpec) -> str | None:
        context = experiment.context_tokens()
        k, m = self.prefix_tokens, self.continuation_tokens
        if context is not None and k + m > context + 1:
            return (
                f"prefix_tokens + continuation_tokens = {k} + {m} exceeds what this "
                f"{experiment.kind} model can read and decode (its context of {context} "
                f"tokens + 1); set prefix_tokens + continuation_tokens ≤ {context + 1}"
            )
        return None


@torch.no_grad()
def greedy_continuations(
    model: torch.nn.Module, prompts: torch.Tensor, steps: int, batch_size: int = 256
) -> torch.Tensor:
    """Greedy decoding of `steps` tokens after each prompt: (N, k) → (N, steps)."""
    device = next(model.parameters()).device
    outputs = []
    for start in range(0, prompts.shape[0], batch_size):
        sequence = prompts[start : start + batch_size].to(device)
        for _ in range(steps):
            next_token = model(sequence)[:, -1].argmax(-1, keepdim=True)  # (B, 1)
            sequence = torch.cat([sequence, next_token], dim=1)
        outputs.append(sequence[:, prompts.shape[1] :].cpu())
    return torch.cat(outputs) if outputs else torch.empty(0, steps, dtype=torch.long)


def full_sequences(items: SequenceSet) -> tuple[torch.Tensor, torch.Tensor]:
    """The token sequences x_0 … x_L of language-model items, (N, T + 1), and their lengths
    L + 1 (up to the last scored target)."""
    scored = items.targets != IGNORE_INDEX
    last = scored.long().cumsum(1).argmax(1)  # index of the last scored target
    lengths = torch.where(scored.any(1), last + 2, torch.ones_like(last))
    sequences = torch.cat([items.inputs, torch.zeros_like(items.inputs[:, :1])], dim=1)
    rows = torch.arange(len(items))
    sequences[rows, last + 1] = items.targets[rows, last].clamp(min=0)
    return sequences, lengths


def testable(spec: ExtractionSpec, items: SequenceSet) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of `items` long enough for k + m tokens, and their token sequences."""
    sequences, lengths = full_sequences(items)
    eligible = (lengths >= spec.prefix_tokens + spec.continuation_tokens).nonzero().flatten()
    return eligible, sequences[eligible]


def _scores(spec: ExtractionSpec, target: ProbeTarget, items: SequenceSet) -> dict[str, Any]:
    eligible, sequences = testable(spec, items)
    n_eligible = len(eligible)
    eligible, sequences = eligible[: spec.max_items], sequences[: spec.max_items]
    k, m = spec.prefix_tokens, spec.continuation_tokens
    if target.max_length is not None and k + m > target.max_length + 1:
        raise ValueError(
            f"prefix_tokens + continuation_tokens = {k + m} exceeds the model's context "
            f"({target.max_length} tokens) + 1"
        )
    decoded = greedy_continuations(target.model, sequences[:, :k], m)
    fraction = (decoded == sequences[:, k : k + m]).double().mean(1)  # M per sequence
    memorized = fraction == 1.0
    histogram = torch.histc(fraction, bins=_HISTOGRAM_BINS, min=0.0, max=1.0)
    repeats = items.repeats[eligible] if items.repeats is not None else None
    return {
        "fraction_memorized": float(memorized.double().mean()) if len(eligible) else None,
        "mean_match": float(fraction.mean()) if len(eligible) else None,
        "match_histogram": {"bins": _HISTOGRAM_BINS, "counts": [int(c) for c in histogram]},
        "by_repeats": recall_by_repeats(memorized, repeats),
        "n_tested": len(eligible),
        "n_too_short": len(items) - n_eligible,
    }


@register_probe(ExtractionSpec, "k-extractable memorization: greedy continuation of k tokens.")
def run(spec: ExtractionSpec, inputs: ProbeInputs, reporter: Reporter) -> dict[str, Any]:
    target = inputs.target
    reporter.progress(0.1, "decoding continuations of training sequences")
    result: dict[str, Any] = {
        "prefix_tokens": spec.prefix_tokens,
        "continuation_tokens": spec.continuation_tokens,
        "members": _scores(spec, target, target.members),
    }
    if target.non_members is not None:
        reporter.progress(0.6, "decoding continuations of held-out sequences")
        result["held_out"] = _scores(spec, target, target.non_members)
    return result
