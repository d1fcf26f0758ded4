"""`loss_mia` (Yeom et al. 2018): score = −ℓ(x), the negated mean token NLL.

A model fits its training items better than unseen ones from the same generator, so
members get lower loss, hence higher score.
"""

from __future__ import annotations

from typing import Any, Literal

from core.probes.membership import MembershipProbeSpec, run_attack
from core.probes.registry import ProbeInputs, register_probe
from core.reporter import Reporter


class LossMiaSpec(MembershipProbeSpec):
    kind: Literal["loss_mia"] = "loss_mia"


@register_probe(LossMiaSpec, "LOSS attack (Yeom): score = −mean token NLL; AUC, TPR@low FPR.")
def run(spec: LossMiaSpec, inputs: ProbeInputs, reporter: Reporter) -> dict[str, Any]:
    return run_attack(
        spec, inputs.target, reporter, lambda stats, _: -stats.mean_nll(), score_name="−ℓ(x)"
    )
