"""`reference_mia`: score = ℓ_ref(x) − ℓ_target(x), the reference a model of the same kind
trained on data from the same generator, disjoint from the target's members and
non-members (another experiment, by id; `ExperimentSpec.reference_refusal` says which
runs qualify, `core.reference_data` how kinds set such data aside).

Calibrating by a reference removes how hard an item is in itself: only the extra fit
that the target gained from training on it remains.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar, Literal

import torch

from core.probes.features import Feature
from core.probes.membership import MembershipProbeSpec, run_attack
from core.probes.registry import ProbeInputs, ProbeNotApplicableError, register_probe
from core.probes.sequences import TokenStatistics, token_statistics
from core.probes.target import SequenceSet
from core.reporter import Reporter


class ReferenceMiaSpec(MembershipProbeSpec):
    kind: Literal["reference_mia"] = "reference_mia"
    reference_experiment_id: uuid.UUID

    needs: ClassVar[frozenset[Feature]] = frozenset({Feature.held_out, Feature.disjoint_reference})

    def referenced_experiments(self) -> tuple[uuid.UUID, ...]:
        return (self.reference_experiment_id,)


@register_probe(ReferenceMiaSpec, "Reference attack: ℓ_reference(x) − ℓ_target(x).")
def run(spec: ReferenceMiaSpec, inputs: ProbeInputs, reporter: Reporter) -> dict[str, Any]:
    reference = inputs.references[spec.reference_experiment_id]
    if reference.vocabulary != inputs.target.vocabulary:
        raise ProbeNotApplicableError(
            "the reference model's vocabulary differs from the target's "
            f"({reference.vocab_size} vs {inputs.target.vocab_size} tokens); "
            'train the reference as the target\'s spec with `reference_data: "train_on"`'
        )

    def score(target_stats: TokenStatistics, items: SequenceSet) -> torch.Tensor:
        reference_stats = token_statistics(reference.model, items)
        return reference_stats.mean_nll() - target_stats.mean_nll()

    return run_attack(spec, inputs.target, reporter, score, score_name="ℓ_ref(x) − ℓ(x)")
