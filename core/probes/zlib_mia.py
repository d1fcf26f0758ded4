"""`zlib_mia` (Carlini et al. 2021): score = −ℓ(x) / zlib bits of x.

Dividing by the zlib-compressed length discounts items that are simply easy (repetitive
text gets low loss from any model); what remains is what the model knows beyond that.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from core.probes.membership import MembershipProbeSpec, run_attack
from core.probes.registry import ProbeInputs, register_probe
from core.probes.sequences import TokenStatistics, zlib_bits
from core.probes.target import SequenceSet
from core.reporter import Reporter


class ZlibMiaSpec(MembershipProbeSpec):
    kind: Literal["zlib_mia"] = "zlib_mia"


def zlib_score(stats: TokenStatistics, items: SequenceSet) -> torch.Tensor:
    """−ℓ(x) / zlib bits, per item (N,)."""
    return -stats.mean_nll() / zlib_bits(items.texts)


@register_probe(ZlibMiaSpec, "zlib attack (Carlini 2021): score = −ℓ(x) / zlib length of x.")
def run(spec: ZlibMiaSpec, inputs: ProbeInputs, reporter: Reporter) -> dict[str, Any]:
    return run_attack(spec, inputs.target, reporter, zlib_score, score_name="−ℓ(x) / zlib(x)")
