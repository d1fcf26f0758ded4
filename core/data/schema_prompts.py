"""Schema-linking questions as token sequences: the word vocabulary with slot tokens, the
prompt that lists a schema, and the answer written in slots and rendered back to names.

A prompt lists every table and column, each followed by a slot token naming it for this
prompt only (`<table> concert SLOT_5 concert year SLOT_2 …`), then the question:
    <schema> <table> t SLOT_a t id SLOT_b t name SLOT_c … <question> words … <answer>
The slot follows its item so that, in a causal model, the slot's position has read the
item's name (memlab's choice: the brief put the slot first). Slot numbers are a fresh
random permutation per prompt, so a slot number carries no identity: an answer must
point back at the prompt, not recall a name. The answer is written in slots,
    ###Tables: SLOT_5 ; ###Columns: SLOT_2 , SLOT_9 ; <end>
and rendered back to names (`###Tables: concert;###Columns: concert.year, …;`) for the
paper's reward and metrics, which read text.

Prompts are left-padded to a fixed length P and answers right-padded to L, so every
answer starts at position P and a batch generates in lockstep.

Dimensions: N questions, P prompt length, L answer length, M slots.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from core.data.schema_answers import render_answer
from core.data.schemas import KEY_SUFFIX, Question, SchemaShape, lexicon_words

PAD = "<pad>"
END = "<end>"
TABLES_MARK, COLUMNS_MARK = "###Tables:", "###Columns:"
SEPARATOR, TERMINATOR = ",", ";"
PROMPT_MARKS = ("<schema>", "<table>", "<question>", "<answer>")
ANSWER_MARKS = (TABLES_MARK, COLUMNS_MARK, SEPARATOR, TERMINATOR, END)
# The longest question the templates write (the three-table chain with a two-word verb).
MAX_QUESTION_WORDS = 17
# How each answer mark reads in the rendered text.
_RENDERED = {TABLES_MARK: "###Tables: ", COLUMNS_MARK: "###Columns: ", SEPARATOR: ", "}


class UnknownTokenError(ValueError):
    """A token the schema vocabulary does not hold."""


@dataclass(frozen=True)
class SchemaVocab:
    """Token strings: padding (id 0), marks, words, then the M slot tokens last."""

    tokens: tuple[str, ...]
    n_slots: int

    @classmethod
    def for_shape(cls, shape: SchemaShape) -> SchemaVocab:
        slots = tuple(f"SLOT_{i}" for i in range(shape.max_items))
        words = (PAD, *PROMPT_MARKS, *ANSWER_MARKS, *lexicon_words())
        return cls((*words, *slots), shape.max_items)

    @property
    def size(self) -> int:
        return len(self.tokens)

    @property
    def slot_start(self) -> int:
        """The id of SLOT_0; slot i is `slot_start + i`."""
        return len(self.tokens) - self.n_slots

    def id(self, token: str) -> int:
        """The id of `token`; UnknownTokenError for a word outside the vocabulary."""
        index: dict[str, int] | None = self.__dict__.get("_index")
        if index is None:
            index = {t: i for i, t in enumerate(self.tokens)}
            object.__setattr__(self, "_index", index)
        if token not in index:
            raise UnknownTokenError(
                f"{token!r} is not in the schema vocabulary: every word must come from "
                "core.data.schemas' lexicon or templates, and slots stop at "
                f"SLOT_{self.n_slots - 1}"
            )
        return index[token]

    def answer_alphabet(self) -> torch.Tensor:
        """(V,) bool: the tokens an answer may hold, its marks and the slots (decoding's
        alphabet)."""
        alphabet = torch.zeros(self.size, dtype=torch.bool)
        alphabet[[self.id(mark) for mark in ANSWER_MARKS]] = True
        alphabet[self.slot_start :] = True
        return alphabet


@dataclass(frozen=True)
class PromptLayout:
    """The fixed lengths every prompt and answer is padded to."""

    prompt_length: int
    answer_length: int

    @classmethod
    def for_shape(cls, shape: SchemaShape, answer_length: int) -> PromptLayout:
        """P bounds the longest listing: per table `<table> t SLOT`, per column
        `t c SLOT` (a key `t other id SLOT`), plus the question and its marks."""
        per_table = 3 + 3 * (1 + shape.max_attributes) + 4
        return cls(1 + shape.max_tables * per_table + 2 + MAX_QUESTION_WORDS, answer_length)

    @property
    def context(self) -> int:
        """The model's context: the sequence less its last token (P + L − 1)."""
        return self.prompt_length + self.answer_length - 1


@dataclass(frozen=True)
class EncodedQuestions:
    """Questions as tensors, with what each prompt's slots name.

    prompts:    (N, P) left-padded prompt ids.
    answers:    (N, L) the gold answer in slots, ending in <end>, right-padded.
    slot_names: per question, the item each slot names ("" where unused).
    gold:       per question, the gold answer as text.
    texts:      per question, prompt and gold answer as one readable line.
    """

    prompts: torch.Tensor
    answers: torch.Tensor
    slot_names: tuple[tuple[str, ...], ...]
    gold: tuple[str, ...]
    texts: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.prompts.shape[0])

    def subset(self, rows: list[int]) -> EncodedQuestions:
        return EncodedQuestions(
            self.prompts[rows],
            self.answers[rows],
            tuple(self.slot_names[i] for i in rows),
            tuple(self.gold[i] for i in rows),
            tuple(self.texts[i] for i in rows),
        )


def _listing(question: Question, slot_of: dict[str, str]) -> list[str]:
    tokens = ["<schema>"]
    for table in question.schema.tables:
        tokens += ["<table>", table.name, slot_of[table.name]]
        for column in table.columns:
            words = column[: -len(KEY_SUFFIX)] + " id" if column.endswith(KEY_SUFFIX) else column
            tokens += [table.name, *words.split(), slot_of[f"{table.name}.{column}"]]
    return tokens


def answer_tokens(tables: list[str], columns: list[str]) -> list[str]:
    """An answer's tokens from its slot tokens, e.g. `###Tables: SLOT_1 ; … <end>`."""

    def listed(slots: list[str]) -> list[str]:
        out: list[str] = []
        for index, slot in enumerate(slots):
            out += [SEPARATOR, slot] if index else [slot]
        return out

    return [
        TABLES_MARK,
        *listed(tables),
        TERMINATOR,
        COLUMNS_MARK,
        *listed(columns),
        TERMINATOR,
        END,
    ]


def full_schema_answer_length(shape: SchemaShape) -> int:
    """Tokens of the longest answer that names every item of the largest schema once:
    `###Tables:`, max_tables slots and their separators, `;`, `###Columns:`, the other
    items and their separators, `;`, <end> (2 · max_items + 3). An answer budget below it
    would cut off a full-schema superset before its final `;`.

    >>> full_schema_answer_length(SchemaShape())  # 4 tables and 20 columns
    51
    """
    tables = ["SLOT"] * shape.max_tables
    columns = ["SLOT"] * (shape.max_items - shape.max_tables)
    return len(answer_tokens(tables, columns))


def encode_questions(
    questions: list[Question], vocab: SchemaVocab, layout: PromptLayout, rng: random.Random
) -> EncodedQuestions:
    """Each question's prompt and gold answer, its slots a fresh permutation from `rng`."""
    prompts, answers, names, gold, texts = [], [], [], [], []
    for question in questions:
        items = question.schema.items()
        order = rng.sample(range(vocab.n_slots), len(items))
        slot_of = {item: f"SLOT_{slot}" for item, slot in zip(items, order, strict=True)}
        prompt = [*_listing(question, slot_of), "<question>", *question.words, "<answer>"]
        answer = answer_tokens(
            [slot_of[t] for t in question.gold_tables], [slot_of[c] for c in question.gold_columns]
        )
        if len(prompt) > layout.prompt_length or len(answer) > layout.answer_length:
            raise ValueError(
                f"a question needs {len(prompt)} prompt and {len(answer)} answer tokens; the "
                f"layout holds {layout.prompt_length} and {layout.answer_length}: raise "
                "max_answer_tokens"
            )
        prompts.append(
            [vocab.id(PAD)] * (layout.prompt_length - len(prompt)) + [vocab.id(t) for t in prompt]
        )
        answers.append(
            [vocab.id(t) for t in answer] + [vocab.id(PAD)] * (layout.answer_length - len(answer))
        )
        slot_names = [""] * vocab.n_slots
        for item, slot in zip(items, order, strict=True):
            slot_names[slot] = item
        names.append(tuple(slot_names))
        gold_text = render_answer(list(question.gold_tables), list(question.gold_columns))
        gold.append(gold_text)
        texts.append(" ".join(prompt) + " " + gold_text)
    return EncodedQuestions(
        torch.tensor(prompts, dtype=torch.long),
        torch.tensor(answers, dtype=torch.long),
        tuple(names),
        tuple(gold),
        tuple(texts),
    )


def render(answer: list[int], slot_names: tuple[str, ...], vocab: SchemaVocab) -> str:
    """An answer's ids as the paper's text: slots become their items' names; reading stops
    at <end> (or padding). Any other token is written as itself."""
    parts = []
    for token_id in answer:
        token = vocab.tokens[token_id]
        if token in (END, PAD):
            break
        if token_id >= vocab.slot_start:
            parts.append(slot_names[token_id - vocab.slot_start])
        else:
            parts.append(_RENDERED.get(token, token))
    return "".join(parts)
