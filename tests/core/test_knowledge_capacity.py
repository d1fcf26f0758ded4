"""Knowledge capacity reports the bits of the mapping beside the total, on cases small
enough to compute by hand.

Three facts pose a country (token A, B or C) and score its capital (x, y or z): fact 0 is
A → x, fact 1 is B → y, fact 2 is C → z. The model is a table of next-token probabilities
given the country; a fourth token, "other", takes what the model puts off the capitals,
which renormalising over the candidates removes.
"""

from __future__ import annotations

import doctest
import math
from collections.abc import Sequence
from typing import Any

import pytest
import torch

import core.probes.knowledge_capacity
from core.catalog import get_probe, parse_probe_spec
from core.probes.registry import ProbeInputs
from core.probes.target import AttributeChoices, Facts, ProbeTarget, SequenceSet
from core.reporter import InMemoryReporter
from core.spec_model import spec_hash

TOKENS = {"A": 0, "B": 1, "C": 2, "x": 3, "y": 4, "z": 5, "other": 6}
COUNTRIES = ("A", "B", "C")
CAPITALS = ("x", "y", "z")  # fact i's capital, in the order the generator drew them
PRIOR_BITS = 4.0  # each capital's surprisal under the (made-up) generator
# spec_hash of {"kind": "knowledge_capacity", "seed": 0} by the code before the mapping.
STORED_HASH = "80b29bbc0ee35c032e736872e03d5527730eae0452484c1c3f0cdefc6a5bedbc"


class NextTokenTable(torch.nn.Module):
    """Next-token probabilities that depend only on the current token (a bigram table)."""

    def __init__(self, rows: dict[str, dict[str, float]]) -> None:
        super().__init__()
        table = torch.full((len(TOKENS), len(TOKENS)), 1.0 / len(TOKENS))
        for current, following in rows.items():
            table[TOKENS[current]] = torch.tensor([following.get(t, 0.0) for t in TOKENS])
        self.log_table = torch.nn.Parameter(table.log())  # log 0 = −inf: never predicted

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.log_table[idx]  # (B, T) → (B, T, V)


def pose(facts: Sequence[int], values: Sequence[str]) -> SequenceSet:
    """Fact f's country followed by a capital, scored on the capital."""
    rows = [[TOKENS[COUNTRIES[f]], TOKENS[v]] for f, v in zip(facts, values, strict=True)]
    texts = [f"{COUNTRIES[f]}{v}" for f, v in zip(facts, values, strict=True)]
    return SequenceSet.from_token_lists(rows, [1] * len(rows), texts)


def capacity_report(
    rows: dict[str, dict[str, float]], without_replacement: bool, **params: Any
) -> dict[str, Any]:
    choices = AttributeChoices(CAPITALS, without_replacement, pose)
    facts = Facts(
        pose([0, 1, 2], list(CAPITALS)),
        torch.full((3,), PRIOR_BITS, dtype=torch.float64),
        choices,
    )
    model = NextTokenTable(rows)
    target = ProbeTarget(model, 100, len(TOKENS), "table", pose([0], ["x"]), facts=facts)
    spec = parse_probe_spec({"kind": "knowledge_capacity", **params})
    return get_probe("knowledge_capacity").run(spec, ProbeInputs(target, {}), InMemoryReporter())


# p(capital | country), the rest on "other".
PARTLY_KNOWN = {
    "A": {"x": 1 / 2, "y": 1 / 8, "z": 1 / 8, "other": 1 / 4},
    "B": {"x": 1 / 4, "y": 1 / 12, "z": 1 / 6, "other": 1 / 2},
    "C": {"x": 1 / 8, "y": 1 / 8, "z": 1 / 4, "other": 1 / 2},
}


def test_the_knowledge_capacity_examples_hold() -> None:
    assert doctest.testmod(core.probes.knowledge_capacity).failed == 0


def test_mapping_bits_when_the_generator_draws_capitals_without_replacement() -> None:
    # Fact 0 may have any of x, y, z: m = 3, p(x | A) renormalised = (1/2)/(3/4) = 2/3,
    #   so log₂ 3 − log₂ 3/2 = 1 bit.
    # Fact 1 may have y or z (x is taken): m = 2, p(y | B) = (1/12)/(1/12 + 1/6) = 1/3,
    #   so 1 − log₂ 3 ≈ −0.585 bits: worse than a guess among the two.
    # Fact 2 may only have z: m = 1, nothing to know, 0 bits.
    # Summed, then clipped once: 2 − log₂ 3 ≈ 0.415 (clipping per fact would give 1).
    report = capacity_report(PARTLY_KNOWN, without_replacement=True)
    assert report["mapping_bits"] == pytest.approx(2 - math.log2(3))
    assert report["mapping_data_bits"] == pytest.approx(math.log2(3) + 1 + 0)  # log₂ 3!
    assert report["mapping_facts_scored"] == 3 and not report["mapping_estimated_from_sample"]
    # Beside it, the total against the prior: Σ (4 − CE) with CE = 1, log₂ 12, 2 bits.
    assert report["bits"] == pytest.approx(3 * PRIOR_BITS - (1 + math.log2(12) + 2))


def test_mapping_bits_when_the_generator_may_repeat_capitals() -> None:
    # Every fact may have any of x, y, z (m = 3, log₂ 3 each):
    # fact 0: 2/3 → 1 bit; fact 1: p(y | B) = (1/12)/(1/2) = 1/6 → log₂ 3 − log₂ 6 = −1;
    # fact 2: p(z | C) = (1/4)/(1/2) = 1/2 → log₂ 3 − 1. Sum: log₂ 3 − 1 ≈ 0.585 bits.
    report = capacity_report(PARTLY_KNOWN, without_replacement=False)
    assert report["mapping_bits"] == pytest.approx(math.log2(3) - 1)
    assert report["mapping_data_bits"] == pytest.approx(3 * math.log2(3))


def test_facts_scored_over_several_batches_give_the_same_mapping(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    whole = capacity_report(PARTLY_KNOWN, without_replacement=True)
    # At 2 sequences a batch, each fact's candidates (3, 2 and 1) are scored on their own.
    monkeypatch.setattr(core.probes.knowledge_capacity, "_SEQUENCES_PER_BATCH", 2)
    split = capacity_report(PARTLY_KNOWN, without_replacement=True)
    assert split["mapping_bits"] == pytest.approx(whole["mapping_bits"], abs=1e-12)


def test_a_model_that_knows_only_which_names_are_capitals_has_no_mapping_bits() -> None:
    # The same odds for x, y and z whatever the country: the total counts the prior bits
    # it saves (4 − log₂ 3 per fact), the mapping nothing.
    capitals_only = {country: {"x": 1 / 3, "y": 1 / 3, "z": 1 / 3} for country in COUNTRIES}
    report = capacity_report(capitals_only, without_replacement=True)
    assert report["bits"] == pytest.approx(3 * (PRIOR_BITS - math.log2(3)))
    assert report["mapping_bits"] == pytest.approx(0.0, abs=1e-9)


def test_a_model_that_prefers_wrong_capitals_has_its_mapping_clipped_at_zero() -> None:
    # Each fact's own capital gets 1/10 of the capitals' mass: CE = log₂ 10 > log₂ 3 each.
    wrong = {
        "A": {"x": 0.1, "y": 0.6, "z": 0.3},
        "B": {"x": 0.45, "y": 0.1, "z": 0.45},
        "C": {"x": 0.5, "y": 0.4, "z": 0.1},
    }
    report = capacity_report(wrong, without_replacement=False)
    assert report["mean_mapping_cross_entropy_bits"] == pytest.approx(math.log2(10))
    assert report["mapping_bits"] == 0.0


def test_a_sample_of_facts_estimates_the_mapping_scaled_to_every_fact() -> None:
    # A model that knows every capital: each fact gives its whole log₂ 3 bits (drawn with
    # replacement), so any 2 of the 3 facts, scaled by 3/2, give the exact sum.
    knows_all = {
        country: {capital: 1.0} for country, capital in zip(COUNTRIES, CAPITALS, strict=True)
    }
    report = capacity_report(knows_all, without_replacement=False, mapping_max_facts=2)
    assert report["mapping_facts_scored"] == 2 and report["mapping_estimated_from_sample"]
    assert report["mapping_bits"] == pytest.approx(3 * math.log2(3))


def test_a_kind_that_offers_no_choices_gets_no_mapping_figure() -> None:
    facts = Facts(pose([0], ["x"]), torch.tensor([PRIOR_BITS], dtype=torch.float64))
    model = NextTokenTable(PARTLY_KNOWN)
    target = ProbeTarget(model, 100, len(TOKENS), "table", pose([0], ["x"]), facts=facts)
    spec = parse_probe_spec({"kind": "knowledge_capacity"})
    report = get_probe("knowledge_capacity").run(spec, ProbeInputs(target, {}), InMemoryReporter())
    assert report["bits"] == pytest.approx(PRIOR_BITS - 1)
    assert report["mapping_bits"] is None


def test_a_stored_knowledge_capacity_spec_hashes_as_before_the_sample_field() -> None:
    # Written by the code before `mapping_max_facts` existed: {"kind": …, "seed": 0}.
    stored = parse_probe_spec({"kind": "knowledge_capacity", "seed": 0})
    assert stored.mapping_max_facts is None  # every fact, the only behaviour there was
    assert spec_hash(stored) == STORED_HASH
    assert spec_hash(parse_probe_spec({"kind": "knowledge_capacity", "mapping_max_facts": 5})) != (
        STORED_HASH
    )
