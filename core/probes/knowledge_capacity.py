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

The total also counts what a model learns of the attribute values themselves (which
names are capitals), with no idea which fact each belongs to. The bits of the *mapping*
leave that out: fact f could have had any of the m_f attribute values of the training
set still available to it (all of them, less those drawn before it when the generator
never repeats a value), so a model that knows which values occur but not which goes
where pays CE_f = log₂ m_f over those candidates, its probabilities renormalised over
them. Mapping bits = max(0, Σ_f (log₂ m_f − CE_f)), clipped once as the total is. Each
fact costs m_f scored sequences (n(n+1)/2 for n facts drawn without replacement);
`mapping_max_facts` estimates the sum from a seeded sample of facts instead.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field

from core.probes.features import Feature
from core.probes.registry import ProbeInputs, register_probe
from core.probes.sequences import token_statistics
from core.probes.spec import ProbeSpec
from core.probes.target import AttributeChoices
from core.reporter import Reporter

_SEQUENCES_PER_BATCH = 8192


class KnowledgeCapacitySpec(ProbeSpec):
    kind: Literal["knowledge_capacity"] = "knowledge_capacity"
    mapping_max_facts: int | None = Field(
        None,
        ge=1,
        description="Estimate the mapping bits from a seeded sample of at most this many "
        "facts (the sum scaled up to every fact); None = score every fact.",
    )

    needs: ClassVar[frozenset[Feature]] = frozenset({Feature.facts})
    added_fields: ClassVar[frozenset[str]] = frozenset({"mapping_max_facts"})


def renormalised_cross_entropy_bits(candidate_bits: torch.Tensor, own: int) -> float:
    """−log₂ of the probability of candidate `own` once the model's probabilities are
    renormalised over the candidates: ℓ_own + log₂ Σ_c 2^(−ℓ_c), from each candidate's
    ℓ_c in bits, (M,).

    >>> renormalised_cross_entropy_bits(torch.tensor([1.0, 2.0, 2.0]), own=0)  # ½ of ½+¼+¼
    1.0
    """
    bits = candidate_bits.double()
    log2_total = torch.logsumexp(-bits * math.log(2), dim=0) / math.log(2)
    return float(bits[own] + log2_total)


def mapping_terms(
    model: torch.nn.Module, choices: AttributeChoices, facts: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each fact index in `facts`: log₂ m_f and CE_f, the model's renormalised
    cross-entropy in bits over the m_f candidates, both (K,) float64."""
    log2_choices: list[float] = []
    cross_entropy: list[float] = []
    for group in _groups_of_about_one_batch(choices, facts):
        candidates = [choices.candidates(fact) for fact in group]
        posed = choices.pose(
            [fact for fact, values in zip(group, candidates, strict=True) for _ in values],
            [value for values in candidates for value in values],
        )
        bits = token_statistics(model, posed).total_nll_bits()  # (Σ_f m_f,) over the group
        start = 0
        for fact, values in zip(group, candidates, strict=True):
            own = values.index(choices.values[fact])
            log2_choices.append(math.log2(len(values)))
            cross_entropy.append(
                renormalised_cross_entropy_bits(bits[start : start + len(values)], own)
            )
            start += len(values)
    return (
        torch.tensor(log2_choices, dtype=torch.float64),
        torch.tensor(cross_entropy, dtype=torch.float64),
    )


def _groups_of_about_one_batch(choices: AttributeChoices, facts: list[int]) -> list[list[int]]:
    """`facts` in order, cut into groups whose candidates number about
    `_SEQUENCES_PER_BATCH` (a fact with more candidates than that is a group alone), so
    that few facts' candidates are posed at once."""
    groups: list[list[int]] = [[]]
    rows = 0
    for fact in facts:
        if rows >= _SEQUENCES_PER_BATCH:
            groups.append([])
            rows = 0
        groups[-1].append(fact)
        rows += len(choices.candidates(fact))
    return [group for group in groups if group]


def mapping_report(
    spec: KnowledgeCapacitySpec, model: torch.nn.Module, choices: AttributeChoices | None
) -> dict[str, Any]:
    """Bits of the mapping, max(0, Σ_f (log₂ m_f − CE_f)), over every fact or scaled up
    from a seeded sample of `spec.mapping_max_facts` of them; None where the kind does not
    say what each fact's attribute could have been."""
    if choices is None:
        return {"mapping_bits": None, "mapping_data_bits": None}
    n_facts = len(choices.values)
    facts = list(range(n_facts))
    if spec.mapping_max_facts is not None and spec.mapping_max_facts < n_facts:
        generator = torch.Generator().manual_seed(spec.seed)
        sample = torch.randperm(n_facts, generator=generator)[: spec.mapping_max_facts]
        facts = sorted(sample.tolist())
    log2_choices, cross_entropy = mapping_terms(model, choices, facts)
    scale = n_facts / len(facts)  # 1 when every fact is scored
    return {
        "mapping_bits": max(0.0, scale * float((log2_choices - cross_entropy).sum())),
        "mapping_data_bits": scale * float(log2_choices.sum()),
        "mapping_facts_scored": len(facts),
        "mapping_estimated_from_sample": len(facts) < n_facts,
        "mapping_without_replacement": choices.without_replacement,
        "mean_mapping_cross_entropy_bits": float(cross_entropy.mean()),
    }


@register_probe(KnowledgeCapacitySpec, "Bits of knowledge stored, and bits per parameter.")
def run(spec: KnowledgeCapacitySpec, inputs: ProbeInputs, reporter: Reporter) -> dict[str, Any]:
    facts = inputs.target.facts
    assert facts is not None  # guaranteed by the `facts` need
    reporter.progress(0.1, f"scoring {len(facts.sequences)} facts")
    cross_entropy = token_statistics(inputs.target.model, facts.sequences).total_nll_bits()
    gain = facts.prior_bits - cross_entropy  # per fact, (N,); negative: worse than the prior
    bits = max(0.0, float(gain.sum()))
    data_bits = float(facts.prior_bits.sum())
    reporter.progress(0.3, "scoring each fact against the other facts' attributes")
    mapping = mapping_report(spec, inputs.target.trained_model, facts.choices)
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
        **mapping,
    }
