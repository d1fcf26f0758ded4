"""`knowledge_capacity` (Allen-Zhu & Li, "Physics of Language Models 3.3"): bits of
knowledge a model stores, against the entropy its data generator put into the facts.

For each fact, the generator drew its attribute with entropy H bits (known exactly);
the model assigns the attribute's tokens a cross-entropy of CE bits. What the model
knows of that fact is max(0, H − CE): never more than the data holds, and 0 for a model
that is no better than the generator's own prior. Summed over facts and divided by the
parameter count it is bits per parameter, to hold against the published ≈ 2 bits per
parameter at 1,000 exposures per fact.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from core.probes.registry import ProbeInputs, ProbeSpec, register_probe
from core.probes.sequences import token_statistics
from core.probes.target import Feature
from core.reporter import Reporter


class KnowledgeCapacitySpec(ProbeSpec):
    kind: Literal["knowledge_capacity"] = "knowledge_capacity"

    needs: ClassVar[frozenset[Feature]] = frozenset({Feature.facts})


@register_probe(KnowledgeCapacitySpec, "Bits of knowledge stored, and bits per parameter.")
def run(spec: KnowledgeCapacitySpec, inputs: ProbeInputs, reporter: Reporter) -> dict[str, Any]:
    facts = inputs.target.facts
    assert facts is not None  # guaranteed by the `facts` need
    reporter.progress(0.1, f"scoring {len(facts.sequences)} facts")
    cross_entropy = token_statistics(inputs.target.model, facts.sequences).total_nll_bits()
    known = (facts.entropy_bits - cross_entropy).clamp(min=0)  # per fact, (N,)
    bits = float(known.sum())
    data_bits = float(facts.entropy_bits.sum())
    return {
        "bits": bits,
        "bits_per_parameter": bits / inputs.target.n_parameters,
        "n_parameters": inputs.target.n_parameters,
        "n_facts": len(facts.sequences),
        "data_bits": data_bits,
        "fraction_of_data_bits": bits / data_bits if data_bits else None,
        "mean_entropy_bits": float(facts.entropy_bits.mean()),
        "mean_cross_entropy_bits": float(cross_entropy.mean()),
    }
