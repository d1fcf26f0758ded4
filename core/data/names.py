"""Made-up names from syllables, the fictional country–capital facts built from them, and
the probability model of those names (how many bits a capital carries).

A name is 1 to k syllables, each an onset, a vowel and a coda drawn uniformly from a
`SyllableAlphabet` (an entry listed twice weighs double), then capitalised. Names drawn
through `UniqueNames` are never repeated: a name already used is redrawn.

Example (seed 0; other seeds give other names):
    >>> fictional_facts(2, seed=0)
    [Fact(country='Saszouthmoul', capital='Zis'), Fact(country='Drundfu', capital='Nound')]
    >>> fictional_facts(1, seed=0)[0].line
    'Capital of Saszouthmoul is Zis \\n'
    >>> round(capital_surprisal_bits("Zis"), 2), round(capital_entropy_bits(), 2)
    (11.26, 16.04)
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from functools import cache


@dataclass(frozen=True)
class SyllableAlphabet:
    """The onsets, vowels and codas a syllable is drawn from, uniformly within each."""

    onsets: tuple[str, ...]
    vowels: tuple[str, ...]
    codas: tuple[str, ...]

    def word(self, rng: random.Random, syllables: int) -> str:
        """One capitalised word of `syllables` syllables (three draws from `rng` each)."""
        parts = [
            rng.choice(self.onsets) + rng.choice(self.vowels) + rng.choice(self.codas)
            for _ in range(syllables)
        ]
        return "".join(parts).capitalize()

    @property
    def characters(self) -> frozenset[str]:
        """Every character a word can hold: the parts' letters, and the capitals of the
        letters a word can start with."""
        letters = {c for part in (*self.onsets, *self.vowels, *self.codas) for c in part}
        starts = [*self.onsets, *self.vowels] if "" in self.onsets else list(self.onsets)
        return frozenset(letters | {part[0].upper() for part in starts if part})


@dataclass
class UniqueNames:
    """Draws words from `alphabet` with `rng`, redrawing any shorter than `min_length` or
    already drawn, so every name it returns is new."""

    alphabet: SyllableAlphabet
    rng: random.Random
    min_length: int = 0
    used: set[str] = field(default_factory=set)

    def draw(self, syllables: tuple[int, int]) -> str:
        """A new word of between `syllables[0]` and `syllables[1]` syllables (uniformly)."""
        while True:
            name = self.alphabet.word(self.rng, self.rng.randint(*syllables))
            if len(name) >= self.min_length and name not in self.used:
                self.used.add(name)
                return name


# Onsets and codas are consonants and vowels are vowels, so a name splits uniquely at its
# vowel groups (what `capital_surprisal_bits` relies on). The empty coda is listed twice.
FACT_NAMES = SyllableAlphabet(
    onsets=("b", "br", "d", "dr", "f", "g", "k", "kr", "l", "m", "n", "p", "r", "s", "t", "v", "z"),
    vowels=("a", "e", "i", "o", "u", "ai", "ei", "ou"),
    codas=("", "", "n", "r", "s", "l", "th", "sk", "nd"),
)
COUNTRY_SYLLABLES = (2, 3)
CAPITAL_SYLLABLES = (1, 2)


@dataclass(frozen=True)
class Fact:
    """A fictional country and its capital, as the line `Capital of X is Y \\n`."""

    country: str
    capital: str

    @property
    def prompt(self) -> str:
        return f"Capital of {self.country} is "

    @property
    def line(self) -> str:
        return f"{self.prompt}{self.capital} \n"


@cache
def fact_characters() -> frozenset[str]:
    """Every character a fact line can hold, whatever names are drawn."""
    return frozenset(Fact("", "").line) | FACT_NAMES.characters


def fictional_facts(count: int, seed: int) -> list[Fact]:
    """`count` facts with distinct fictional country and capital names, fixed by `seed`.

    The first n facts of a seed are the same whatever `count` is, so asking for more
    continues the generator past them.
    """
    names = UniqueNames(FACT_NAMES, random.Random(seed))
    return [
        Fact(names.draw(COUNTRY_SYLLABLES), names.draw(CAPITAL_SYLLABLES)) for _ in range(count)
    ]


def _entropy_bits(options: tuple[str, ...]) -> float:
    """Entropy of the string drawn uniformly from `options` (duplicates weigh double)."""
    counts: dict[str, int] = {}
    for option in options:
        counts[option] = counts.get(option, 0) + 1
    return -sum(c / len(options) * math.log2(c / len(options)) for c in counts.values())


def _probability(option: str, options: tuple[str, ...]) -> float:
    return options.count(option) / len(options)


@cache
def capital_entropy_bits() -> float:
    """Entropy in bits of one capital name under `fictional_facts`' generator (≈ 16 bits).

    A name is 1 or 2 syllables (even odds), each an onset, vowel and coda drawn uniformly
    (the empty coda is listed twice). Onsets and codas are consonants and vowels are
    vowels, so a name splits uniquely at its vowel groups: a 1-syllable name carries
    H(onset) + H(vowel) + H(coda), a 2-syllable one H(onset) + H(vowel) + H(coda + onset)
    + H(vowel) + H(coda), where the middle consonant cluster is one outcome ("s"+"kr"
    and "sk"+"r" are the same letters). The rejection of names already used is ignored:
    it moves the figure by far less than a bit while names are few against ~10⁶.
    """
    alphabet = FACT_NAMES
    onset, vowel, coda = (
        _entropy_bits(options) for options in (alphabet.onsets, alphabet.vowels, alphabet.codas)
    )
    cluster = _entropy_bits(tuple(c + o for c in alphabet.codas for o in alphabet.onsets))
    one_syllable = onset + vowel + coda
    two_syllables = onset + vowel + cluster + vowel + coda
    return 1.0 + 0.5 * one_syllable + 0.5 * two_syllables


_VOWEL_RUN = re.compile(r"[aeiou]+")


def capital_surprisal_bits(name: str) -> float:
    """−log₂ p(name) under `fictional_facts`' generator (see `capital_entropy_bits` for why
    a name splits uniquely at its vowel groups); inf for a name it cannot produce."""
    onsets, vowels, codas = FACT_NAMES.onsets, FACT_NAMES.vowels, FACT_NAMES.codas
    text = name.lower()
    runs = list(_VOWEL_RUN.finditer(text))
    if len(runs) not in (1, 2):
        return math.inf
    onset, coda = text[: runs[0].start()], text[runs[-1].end() :]
    p = 0.5 * _probability(onset, onsets) * _probability(coda, codas)
    for run in runs:
        p *= _probability(run.group(), vowels)
    if len(runs) == 2:
        cluster = text[runs[0].end() : runs[1].start()]
        p *= sum(
            _probability(c, codas) / len(onsets)
            for c in dict.fromkeys(codas)
            for o in onsets
            if c + o == cluster
        )
    return -math.log2(p) if p > 0 else math.inf


def capital_prior_bits(facts: list[Fact]) -> list[float]:
    """Each capital's surprisal given the facts before it, in generation order: the
    generator redraws a name already used (as a country or a capital), so capital i is
    drawn from p(name) / (1 − p(names used so far)). With thousands of facts the short
    names run out and this differs from the bare surprisal by several bits."""
    used: set[str] = set()
    used_mass = 0.0  # p(used), under the capital distribution
    priors = []
    for fact in facts:
        for name, is_capital in ((fact.country, False), (fact.capital, True)):
            p = 2.0 ** -capital_surprisal_bits(name)
            if is_capital:
                priors.append(-math.log2(p) + math.log2(1.0 - used_mass))
            if name not in used:
                used.add(name)
                used_mass += p
    return priors
