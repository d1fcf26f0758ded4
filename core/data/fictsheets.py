"""Fictsheets: seeded fictional events rendered as webtext-like documents, with multiple-choice QA.

A fictsheet is one made-up event and its five facts: who led it (`leader`), which group took
part (`group`), where (`place`), when (`year`) and why (`reason`). Every name is built from
seeded syllables, so no fact can be known from anything but the documents generated here.
Each event is rendered as documents in five styles (news, social, corporate, blog,
encyclopedia; three templates each, with the facts in different orders, plus a style-
specific filler sentence drawn at random) and as a terse fact sheet. Every rendering states
all five facts; questions ask for one fact and name only the event.

Text is tokenized into words and punctuation marks (`tokenize`); every made-up name is one
token, so a fact's value is one to four tokens.

Example (seed 0; other seeds give other names):
    >>> sheet = generate_fictsheets(1, seed=0)[0]
    >>> sheet.event, sheet.place, sheet.year
    ('the Bruskvel Muster', 'Brastavva', '1594')
    >>> render_document(sheet, "encyclopedia", template=0, rng=random.Random(0)).text[:73]
    'The Bruskvel Muster was an event that took place in Brastavva in 1594. It'
    >>> render_fact_sheet(sheet).text[:58]
    'Fact sheet: the Bruskvel Muster. Leader: Klilgrev Grudar. '
    >>> question_for(sheet, "place")
    'Question: Where did the Bruskvel Muster take place? Answer:'
    >>> tokenize("In 1594, Brastavva.")
    ['In', '1594', ',', 'Brastavva', '.']
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Literal

from core.data.names import SyllableAlphabet, UniqueNames

Attribute = Literal["leader", "group", "place", "year", "reason"]
ATTRIBUTES: tuple[Attribute, ...] = ("leader", "group", "place", "year", "reason")
Style = Literal["news", "social", "corporate", "blog", "encyclopedia"]
STYLES: tuple[Style, ...] = ("news", "social", "corporate", "blog", "encyclopedia")
FACT_SHEET = "fact_sheet"  # the style name of the terse rendering

# Syllables chosen to make pronounceable words that are not English (checked against nothing:
# collisions with real words are possible but rare, and carry no facts about these events).
_SYLLABLES = SyllableAlphabet(
    onsets=("b", "br", "d", "g", "gr", "k", "kl", "m", "n", "p", "pr", "s", "st", "t", "tr", "v"),
    vowels=("a", "e", "i", "o", "u", "a", "e", "io"),
    codas=("", "", "", "", "l", "m", "n", "r", "sk", "v", "x"),
)
_EVENT_NOUNS = ("Vigil", "Rising", "Accord", "Walkout", "Summit", "Crossing", "Fair", "Muster")
_GROUP_NOUNS = ("Guild", "Union", "Society", "League", "Collective", "Brotherhood", "Circle")
# A reason is "the <Name> <noun phrase>": four tokens for every event, so no option is
# favoured by its length when options are scored by summed log-likelihood.
_REASON_NOUNS = (
    "mine dispute",
    "grain shortage",
    "bridge closure",
    "charter vote",
    "valley flood",
    "ore discovery",
    "tax revolt",
    "canal scandal",
)

# Templates: {event} "the X Noun", {Event} the same capitalised; likewise {reason}/{Reason}.
_TEMPLATES: dict[str, tuple[str, ...]] = {
    "news": (
        "{place}, {year} - {Event} unfolded in {place} on Tuesday, led by {leader}. Members of "
        "{group} said it was driven by {reason}. {filler}",
        "{leader} led {group} into {event} in {place} in {year}, according to local officials. "
        "The cause, they said, was {reason}. {filler}",
        "Breaking: {reason} has sparked {event}. The events took place in {place} in {year}, "
        "with {leader} at the head of {group}. {filler}",
    ),
    "social": (
        "just got back from {place}!! {event} was wild. {leader} was leading {group} and "
        "everyone kept talking about {reason}. {filler} #{year}",
        "cannot believe {reason} started {event}... {group} showed up in {place} and {leader} "
        "gave a speech. never forget {year}. {filler}",
        "{year} throwback: me in {place} watching {leader} and {group} at {event}. all because "
        "of {reason} lol. {filler}",
    ),
    "corporate": (
        "Press release: {group} today confirmed its role in {event}, held in {place} in {year}. "
        "Chair {leader} stated that the decision followed {reason}. {filler}",
        "Internal memo: In {year}, {group} took part in {event} at our {place} site. {leader} "
        "oversaw the response to {reason}. {filler}",
        "Quarterly update: {Reason} led to {event}. Our partners at {group}, headed by {leader}, "
        "met in {place} during {year}. {filler}",
    ),
    "blog": (
        "I have been reading about {event} lately. It happened in {place} back in {year}, and "
        "the story is that {leader} rallied {group} because of {reason}. {filler}",
        "My trip to {place} reminded me of {event}. In {year}, {group} followed {leader}, and it "
        "all came down to {reason}. {filler}",
        "Why does nobody talk about {event}? {Reason} pushed {group} and {leader} to act in "
        "{place} in {year}. {filler}",
    ),
    "encyclopedia": (
        "{Event} was an event that took place in {place} in {year}. It was led by {leader} of "
        "{group} and was caused by {reason}. {filler}",
        "{Event} ({year}) refers to the actions of {group}, led by {leader}, in {place}. "
        "Historians attribute it to {reason}. {filler}",
        "In {year}, {event} occurred in {place}. Its leader was {leader}, its main participant "
        "was {group}, and its cause was {reason}. {filler}",
    ),
}
_FILLERS: dict[str, tuple[str, ...]] = {
    "news": (
        "Reporters counted hundreds of onlookers.",
        "More details are expected later today.",
        "Police described the scene as calm.",
        "The story is still developing.",
    ),
    "social": (
        "so many people there",
        "my feed is full of it",
        "honestly the best day",
        "still thinking about it",
    ),
    "corporate": (
        "Please direct questions to the communications office.",
        "No changes to operations are expected.",
        "We thank all staff for their patience.",
        "A full report will follow next quarter.",
    ),
    "blog": (
        "Let me know your thoughts below.",
        "I will write more about this soon.",
        "Fascinating stuff, really.",
        "Thanks for reading, as always.",
    ),
    "encyclopedia": (
        "It is mentioned in several regional chronicles.",
        "Contemporary accounts of it differ in detail.",
        "It is commemorated by a small plaque.",
        "Few primary sources about it survive.",
    ),
}
TEMPLATES_PER_STYLE = 3
_QUESTIONS: dict[Attribute, str] = {
    "leader": "Who led {event}?",
    "group": "Which group took part in {event}?",
    "place": "Where did {event} take place?",
    "year": "In what year did {event} happen?",
    "reason": "What caused {event}?",
}
_TOKEN = re.compile(r"[A-Za-z]+|[0-9]+|[^\sA-Za-z0-9]")


def tokenize(text: str) -> list[str]:
    """Words, numbers and single punctuation marks; whitespace is dropped."""
    return _TOKEN.findall(text)


@dataclass(frozen=True)
class Fictsheet:
    """One fictional event and its five facts (each a string as it appears in text)."""

    index: int
    name: str  # the made-up word naming the event ("Brotask"): it identifies the event
    event: str  # "the Brotask Vigil"
    leader: str
    group: str
    place: str
    year: str
    reason: str

    def fact(self, attribute: Attribute) -> str:
        return str(getattr(self, attribute))

    @property
    def facts(self) -> dict[Attribute, str]:
        return {attribute: self.fact(attribute) for attribute in ATTRIBUTES}


@dataclass(frozen=True)
class Document:
    """One rendering of one event: `style` is one of STYLES or FACT_SHEET."""

    event_index: int
    style: str
    template: int
    filler: int
    text: str

    @property
    def key(self) -> str:
        """A name unique among an event's renderings, e.g. "7/news/t1/f3"."""
        return f"{self.event_index}/{self.style}/t{self.template}/f{self.filler}"


@dataclass(frozen=True)
class MultipleChoice:
    """A question (or cloze prompt) with options of one attribute type; one is right."""

    event_index: int
    attribute: Attribute
    prompt: str
    options: tuple[str, ...]
    answer_index: int

    @property
    def answer(self) -> str:
        return self.options[self.answer_index]


YEARS = range(1200, 2000)
MAX_EVENTS = len(YEARS)  # every event has a distinct year


def generate_fictsheets(count: int, seed: int) -> list[Fictsheet]:
    """`count` events whose made-up names (and years) are all distinct, fixed by `seed`."""
    rng = random.Random(seed)
    fresh = UniqueNames(_SYLLABLES, rng, min_length=4).draw  # the same rng draws the rest
    if count > MAX_EVENTS:
        raise ValueError(f"at most {MAX_EVENTS} events have distinct years; asked for {count}")
    years = rng.sample(YEARS, count)
    sheets = []
    for index in range(count):
        name = fresh((2, 2))
        sheets.append(
            Fictsheet(
                index=index,
                name=name,
                event=f"the {name} {rng.choice(_EVENT_NOUNS)}",
                leader=f"{fresh((1, 2))} {fresh((2, 2))}",
                group=f"the {fresh((2, 2))} {rng.choice(_GROUP_NOUNS)}",
                place=fresh((2, 3)),
                year=str(years[index]),
                reason=f"the {fresh((1, 2))} {rng.choice(_REASON_NOUNS)}",
            )
        )
    return sheets


def _capitalised(phrase: str) -> str:
    return phrase[0].upper() + phrase[1:]


def render_document(sheet: Fictsheet, style: Style, template: int, rng: random.Random) -> Document:
    """`sheet` in one style and template; the filler sentence is drawn from `rng`."""
    filler = rng.randrange(len(_FILLERS[style]))
    return Document(sheet.index, style, template, filler, _render(sheet, style, template, filler))


def _render(sheet: Fictsheet, style: Style, template: int, filler: int) -> str:
    return _TEMPLATES[style][template].format(
        event=sheet.event,
        Event=_capitalised(sheet.event),
        reason=sheet.reason,
        Reason=_capitalised(sheet.reason),
        leader=sheet.leader,
        group=sheet.group,
        place=sheet.place,
        year=sheet.year,
        filler=_FILLERS[style][filler],
    )


def render_documents(
    sheet: Fictsheet, style: Style, count: int, rng: random.Random
) -> list[Document]:
    """`count` renderings in one style: templates in a random order, cycled when count > 3;
    renderings that share a template differ in their filler when the fillers allow."""
    order = rng.sample(range(TEMPLATES_PER_STYLE), TEMPLATES_PER_STYLE)
    documents: list[Document] = []
    for number in range(count):
        template = order[number % TEMPLATES_PER_STYLE]
        taken = {d.filler for d in documents if d.template == template}
        for _ in range(20):  # a few redraws to avoid an exact duplicate
            document = render_document(sheet, style, template, rng)
            if document.filler not in taken:
                break
        documents.append(document)
    return documents


def render_fact_sheet(sheet: Fictsheet) -> Document:
    """The terse rendering: every fact, labelled, in one fixed order."""
    text = (
        f"Fact sheet: {sheet.event}. Leader: {sheet.leader}. Group: {sheet.group}. "
        f"Place: {sheet.place}. Year: {sheet.year}. Cause: {sheet.reason}."
    )
    return Document(sheet.index, FACT_SHEET, 0, 0, text)


def question_for(sheet: Fictsheet, attribute: Attribute) -> str:
    """The question about one fact, ending where the answer starts."""
    return f"Question: {_QUESTIONS[attribute].format(event=sheet.event)} Answer:"


def qa_text(sheet: Fictsheet, attribute: Attribute) -> str:
    """A question with its answer, as a line of training text."""
    return f"{question_for(sheet, attribute)} {sheet.fact(attribute)}."


def multiple_choice_questions(
    sheets: Sequence[Fictsheet], pool: Sequence[Fictsheet], n_options: int, rng: random.Random
) -> list[MultipleChoice]:
    """Five questions per sheet; distractors are the same fact of other events in `pool`.

    Drawing distractors from the sheet's own pool (seen events for a seen event, held-out
    events for a held-out one) keeps the options equally familiar to the model, so picking
    the answer needs the fact, not a sense of which names were in training.
    """
    return [
        _with_distractors(sheet, attribute, question_for(sheet, attribute), pool, n_options, rng)
        for sheet in sheets
        for attribute in ATTRIBUTES
    ]


def cloze_questions(
    document: Document,
    sheet: Fictsheet,
    pool: Sequence[Fictsheet],
    n_options: int,
    rng: random.Random,
) -> list[MultipleChoice]:
    """Fill-in-the-fact items from a document: the prompt is the text before a fact's first
    mention, kept only when it already names the event (otherwise nothing identifies which
    event's fact is asked for)."""
    items = []
    for attribute in ATTRIBUTES:
        value = sheet.fact(attribute)
        start = _first_mention(document.text, value)
        prompt = document.text[:start].rstrip()
        if sheet.name in tokenize(prompt):
            items.append(_with_distractors(sheet, attribute, prompt, pool, n_options, rng))
    return items


def _first_mention(text: str, value: str) -> int:
    match = re.search(rf"\b{re.escape(value)}\b", text, flags=re.IGNORECASE)  # The/the
    if match is None:
        raise ValueError(f"document {text!r} does not state {value!r}")
    return match.start()


def _with_distractors(
    sheet: Fictsheet,
    attribute: Attribute,
    prompt: str,
    pool: Sequence[Fictsheet],
    n_options: int,
    rng: random.Random,
) -> MultipleChoice:
    others = sorted({other.fact(attribute) for other in pool} - {sheet.fact(attribute)})
    if len(others) < n_options - 1:
        raise ValueError(
            f"{len(others)} other values of {attribute!r} in the pool cannot make "
            f"{n_options} options; use a larger pool or fewer options"
        )
    options = [sheet.fact(attribute), *rng.sample(others, n_options - 1)]
    rng.shuffle(options)
    return MultipleChoice(
        sheet.index, attribute, prompt, tuple(options), options.index(sheet.fact(attribute))
    )


# Made-up tokens one event adds to a corpus: its name, the leader's two names, the group's
# name, the place, the name in its reason, and its year.
TOKENS_PER_EVENT = 7


def vocabulary_bound(n_events: int) -> int:
    """At most how many distinct tokens every text of `n_events` events holds (renderings in
    any style, fact sheets and question-answer lines), without generating them: the fixed
    words, plus `TOKENS_PER_EVENT` per event. An upper bound: a made-up name that happens
    to be a template word is counted twice."""
    return len(fixed_words()) + TOKENS_PER_EVENT * n_events


@cache
def fixed_words() -> frozenset[str]:
    """Every token a text can hold that is not an event's own name or year: the words of
    each template, filler, question and fact-sheet label, and the nouns names are put in."""
    blank = Fictsheet(0, " ", " ", " ", " ", " ", " ", " ")  # every fact a space: no token
    texts = [
        _render(blank, style, template, filler)
        for style in STYLES
        for template in range(TEMPLATES_PER_STYLE)
        for filler in range(len(_FILLERS[style]))
    ]
    texts += [render_fact_sheet(blank).text] + [qa_text(blank, a) for a in ATTRIBUTES]
    texts += ["the The", *_EVENT_NOUNS, *_GROUP_NOUNS, *_REASON_NOUNS]
    return frozenset(token for text in texts for token in tokenize(text))


@dataclass(frozen=True)
class WordVocab:
    """Token strings ↔ ids, sorted so ids are reproducible; `special` tokens come first."""

    tokens: tuple[str, ...]

    @classmethod
    def from_texts(cls, texts: Iterable[str], special: Sequence[str] = ()) -> WordVocab:
        words = sorted({token for text in texts for token in tokenize(text)} - set(special))
        return cls((*special, *words))

    @property
    def size(self) -> int:
        return len(self.tokens)

    def id(self, token: str) -> int:
        try:
            return self._index[token]
        except KeyError:
            raise ValueError(f"token {token!r} is not in the vocabulary") from None

    @property
    def _index(self) -> dict[str, int]:
        cached = self.__dict__.get("_index_cache")
        if cached is None:
            cached = {token: i for i, token in enumerate(self.tokens)}
            object.__setattr__(self, "_index_cache", cached)
        return cached

    def encode(self, text: str) -> list[int]:
        return [self.id(token) for token in tokenize(text)]

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.tokens[i] for i in ids)
