"""`exact_recall`: the fraction of training items whose target the model reproduces exactly.

An item counts as recalled when every scored token is the model's argmax given the true
prefix; for a contiguous answer that is the same as greedy decoding reproducing it.
Reported per repeat count, and on the held-out items (where there are any) as the
generalisation control.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field

from core.probes.registry import ProbeInputs, register_probe
from core.probes.sequences import token_statistics
from core.probes.spec import ProbeSpec
from core.probes.target import SequenceSet
from core.reporter import Reporter


class ExactRecallSpec(ProbeSpec):
    kind: Literal["exact_recall"] = "exact_recall"
    list_items: int = Field(
        200, ge=0, le=10_000, description="How many per-item verdicts to include."
    )


def recall_by_repeats(recalled: torch.Tensor, repeats: torch.Tensor | None) -> dict[str, float]:
    """Fraction recalled for each training repeat count, keyed by the count."""
    if repeats is None:
        return {}
    return {
        str(int(count)): float(recalled[repeats == count].double().mean())
        for count in torch.unique(repeats)
    }


def _exact(model: torch.nn.Module, items: SequenceSet) -> torch.Tensor:
    return token_statistics(model, items).exact()


@register_probe(ExactRecallSpec, "Fraction of training items reproduced exactly (argmax/greedy).")
def run(spec: ExactRecallSpec, inputs: ProbeInputs, reporter: Reporter) -> dict[str, Any]:
    target = inputs.target
    members = target.member_answers or target.members
    reporter.progress(0.1, f"checking {len(members)} training items")
    recalled = _exact(target.model, members)
    result: dict[str, Any] = {
        "accuracy": float(recalled.double().mean()),
        "scored": "the answer of each item" if target.member_answers else "each whole item",
        "n_items": len(members),
        "by_repeats": recall_by_repeats(recalled, members.repeats),
        "items": [
            {"text": text, "recalled": bool(hit)}
            for text, hit in zip(
                members.texts[: spec.list_items], recalled[: spec.list_items], strict=False
            )
        ],
    }
    non_members = target.non_member_answers or target.non_members
    if non_members is not None:
        held_out = _exact(target.model, non_members)
        result["held_out_accuracy"] = float(held_out.double().mean())
        result["n_held_out"] = len(non_members)
    return result
