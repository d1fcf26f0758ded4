"""Made-up names: the syllable generator, the fictional facts built from it, and a
probability model of the names that agrees with counting what the generator can draw."""

import doctest
import math
import random
from collections import Counter

import pytest

import core.data.names
from core.data.names import (
    CAPITAL_SYLLABLES,
    FACT_NAMES,
    Fact,
    SyllableAlphabet,
    UniqueNames,
    capital_entropy_bits,
    capital_prior_bits,
    capital_surprisal_bits,
    fictional_facts,
)


def test_a_word_is_one_onset_vowel_and_coda_per_syllable_capitalised() -> None:
    alphabet = SyllableAlphabet(onsets=("k",), vowels=("a", "o"), codas=("", "n"))
    words = {alphabet.word(random.Random(seed), 2) for seed in range(200)}
    codas = ("", "n")
    assert words == {f"K{v}{c}k{w}{d}" for v in "ao" for c in codas for w in "ao" for d in codas}


def test_unique_names_never_repeat_and_respect_the_minimum_length() -> None:
    alphabet = SyllableAlphabet(onsets=("b", "d"), vowels=("a",), codas=("", "r"))
    names = UniqueNames(alphabet, random.Random(0), min_length=3)
    drawn = [names.draw((1, 2)) for _ in range(10)]
    assert len(set(drawn)) == 10
    assert min(len(name) for name in drawn) >= 3  # "Ba", "Da" are never returned
    assert names.used == set(drawn)


def test_facts_are_distinct_fictional_names_in_the_papers_line_format() -> None:
    facts = fictional_facts(50, seed=0)
    assert len({f.country for f in facts}) == 50
    assert len({f.capital for f in facts} | {f.country for f in facts}) == 100
    assert facts[0].line == f"Capital of {facts[0].country} is {facts[0].capital} \n"
    assert fictional_facts(50, seed=0) == facts
    assert fictional_facts(50, seed=1) != facts


def test_more_facts_continue_the_generator_past_the_first_ones() -> None:
    assert fictional_facts(80, seed=3)[:40] == fictional_facts(40, seed=3)


def _exact_capital_distribution() -> Counter[str]:
    """p(name) · 2 · N₁ · N₁² by enumerating every draw of 1 or 2 syllables (N₁ = the
    number of equally likely one-syllable draws)."""
    syllables = [
        o + v + c for o in FACT_NAMES.onsets for v in FACT_NAMES.vowels for c in FACT_NAMES.codas
    ]
    n = len(syllables)
    weights: Counter[str] = Counter()
    for first in syllables:
        weights[first.capitalize()] += n  # a 1-syllable draw weighs N₁ against N₁² for two
        for second in syllables:
            weights[(first + second).capitalize()] += 1
    return weights


def test_the_entropy_and_surprisal_match_an_exhaustive_count_of_the_generator() -> None:
    assert CAPITAL_SYLLABLES == (1, 2)
    weights = _exact_capital_distribution()
    total = sum(weights.values())
    entropy = -sum(w / total * math.log2(w / total) for w in weights.values())
    assert capital_entropy_bits() == pytest.approx(entropy, abs=1e-9)
    for name in list(weights)[::257]:
        assert capital_surprisal_bits(name) == pytest.approx(-math.log2(weights[name] / total))


def test_capital_surprisal_matches_the_generators_frequencies() -> None:
    rng = random.Random(0)
    draws = 200_000
    names = Counter(FACT_NAMES.word(rng, rng.randint(*CAPITAL_SYLLABLES)) for _ in range(draws))
    for name, count in names.most_common(20):
        p = 2.0 ** -capital_surprisal_bits(name)
        assert abs(count / draws - p) < 4 * math.sqrt(p / draws), name
    mean_surprisal = sum(c * capital_surprisal_bits(n) for n, c in names.items()) / draws
    assert mean_surprisal == pytest.approx(capital_entropy_bits(), abs=0.05)


def test_names_the_generator_cannot_make_are_infinitely_surprising() -> None:
    for name in ("Qqq", "Aaa", "Bababa", "Bax"):
        assert capital_surprisal_bits(name) == math.inf


def test_capital_priors_account_for_names_already_used() -> None:
    # The second capital is drawn once "Ba" is taken: its prior is renormalised.
    facts = [Fact("Kelomar", "Ba"), Fact("Velomara", "Tou")]  # countries no capital can be
    first, second = capital_prior_bits(facts)
    assert first == pytest.approx(capital_surprisal_bits("Ba"))
    p_ba = 2.0 ** -capital_surprisal_bits("Ba")
    assert second == pytest.approx(capital_surprisal_bits("Tou") + math.log2(1 - p_ba))


def test_the_docstring_example_holds() -> None:
    assert doctest.testmod(core.data.names).failed == 0
