"""`knowledge_capacity` (Allen-Zhu & Li, "Physics of Language Models 3.3"): bits of
knowledge a model stores, against the entropy its data generator put into the facts.

For each fact, the generator drew its attribute a with probability p(a), known exactly,
so a model that knows only the generator pays S = −log₂ p(a) bits for it (the mean of S
over facts is the attribute's entropy H). The model pays its cross-entropy CE on the
attribute's tokens. What it knows of the facts is Σ (S − CE), clipped at 0: never more
than the data holds (Σ S), and 0 for a model no better than the generator's prior.
Divided by the parameter count it is bits per parameter, to hold against the published
≈ 2 bits per parameter at 1,000 exposures per fact.

Measuring against each fact's own surprisal, not the average entropy, matters when the
generator is not uniform: a model that learned only which names are common would
otherwise get credit for the common ones. The sum is clipped once, not per fact, so that
noise around the prior does not add up to knowledge; the per-fact clipped sum is
reported too, as an upper figure.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from core.probes.features import Feature
from core.probes.registry import ProbeInputs, register_probe
from core.probes.sequences import token_statistics
from core.probes.spec import ProbeSpec
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
    gain = facts.prior_bits - cross_entropy  # per fact, (N,); negative: worse than the prior
    bits = max(0.0, float(gain.sum()))
    data_bits = float(facts.prior_bits.sum())
    return {
        "bits": bits,
        "bits_per_parameter": bits / inputs.target.n_parameters,
        "bits_clipped_per_fact": float(gain.clamp(min=0).sum()),
        "n_parameters": inputs.target.n_parameters,
        "n_facts": len(facts.sequences),
        "data_bits": data_bits,
        "fraction_of_data_bits": bits / data_bits if data_bits else None,
        "mean_prior_bits": float(facts.prior_bits.mean()),
        "mean_cross_entropy_bits": float(cross_entropy.mean()),
        "facts_known": int((gain > 0).sum()),
    }
