"""`fictional_qa`: fact memorization vs verbatim memorization on fictional events.

After "FictionalQA: A Dataset for Studying Memorization and Knowledge Acquisition"
(Kirchenbauer et al., 2025). The paper fine-tunes pretrained LMs on LLM-written webtext
about fictional events; memlab generates its own events and documents from templates
(`core.data.fictsheets`) and trains a small word-level LM from scratch, so every fact the
model knows came from this corpus.

Data. `n_events` fictsheets; the last `held_out_events` are never trained on. Each trained
event is rendered as `documents_per_event` documents spread over `styles_per_event` styles
(rotating over the styles, so every style appears in the corpus whichever events use it),
or, with `fact_sheets_only`, as that many copies of its terse fact sheet; `repeats` puts
each rendering in the corpus that many times (one document × 4 has the exposures of four
documents and the surface form of one). Held out from
training, for evaluation (and as non-members for membership probes): one more document of
each trained event in its first style ("held-out document"), one in `held_out_style`, which
no event is trained on ("held-out style"), and every rendering of the held-out events.
A tiny language model cannot answer a question without ever having seen the format, so
the question–answer pairs of a `qa_train_fraction` of the trained events are in the
training text too (as in Allen-Zhu & Li's "Physics of Language Models 3.1"); the
questions of the other trained events are the test of fact knowledge.

Model and tokens. Word-level (`fictsheets.tokenize`): each made-up name is one token, so
a ~40-token document holds five facts and a CPU can train on enough epochs in minutes;
a character-level model would need 5–6× longer sequences for the same text. The vocabulary
holds every generated text, held-out ones included, so they encode; tokens that occur only
in held-out text keep their initial embeddings.

Metrics (fractions in [0, 1]):
  - verbatim/<split>: greedy continuation of a document's first `prefix_tokens` tokens
    matches its next `continuation_tokens` tokens exactly.
  - qa/<split>: multiple choice over `n_options` options by summed log-likelihood of each
    option after the question; distractors are the same fact of other events of the same
    split. Splits: `qa_trained` (the questions were in training), `seen_events` (trained
    documents, questions never seen: the fact-knowledge test), `held_out_events` (chance).
  - cloze/<split>: the same scoring with a document's text up to a fact as the prompt
    (only where the prompt already names the event), on a training document, the held-out
    document, the held-out-style document, and held-out events.
  - qa_with_context/seen_events (with `mc_with_context`): the held-out-style document
    (or held-out document) placed before the question — reading, not recall.
Expected: training documents are reproduced verbatim whatever the diversity; answering the
questions of seen events needs several surface forms per event; fact sheets, however often
repeated, give the worst fact accuracy off their own format.

Defaults are sized for a 2-core CPU (a few minutes). Choices the paper does not fix are
spec fields: the question format, the option count (4 or 10), the prefix and continuation
lengths, and which style is held out.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, model_validator

from core.built import Built, MembershipSplit
from core.data.fictsheets import (
    ATTRIBUTES,
    FACT_SHEET,
    MAX_EVENTS,
    STYLES,
    TEMPLATES_PER_STYLE,
    Document,
    Fictsheet,
    MultipleChoice,
    Style,
    WordVocab,
    cloze_questions,
    fixed_words,
    generate_fictsheets,
    multiple_choice_questions,
    qa_text,
    render_document,
    render_documents,
    render_fact_sheet,
    tokenize,
    vocabulary_bound,
)
from core.evaluation import multiple_choice_correct, verbatim_matches
from core.models.sequence_model import SequenceModel, SequenceModelSpec, parameter_count
from core.prepared import Prepared
from core.probes.features import Feature
from core.probes.target import SequenceSet
from core.reference_data import ReferenceData, ReservesReferenceData, reference_data_field
from core.registry import register_kind
from core.reporter import Reporter
from core.specs import TrainedSpec, TrainSpec, field_error
from core.training.fit import Trained, run_prepared
from core.training.samplers import TokenStreamSampler
from core.training.trainer import Evaluator

SEPARATOR = "<doc>"  # the token before every training text and every evaluation prompt
# The shortest rendering (a social post) has 31 tokens; prefix + continuation must fit.
_SHORTEST_DOCUMENT = 31
_SHUFFLED_PASSES = 200


class FictionalQASpec(ReservesReferenceData, TrainedSpec):
    """One corpus diversity setting; sweep `styles_per_event` and `fact_sheets_only`."""

    kind: Literal["fictional_qa"] = "fictional_qa"
    n_events: int = Field(
        60,
        ge=2,
        le=MAX_EVENTS,
        description=f"Fictional events generated (at most {MAX_EVENTS}: each has its own year).",
    )
    held_out_events: int = Field(
        10, ge=0, le=4999, description="Events (the last ones) never trained on."
    )
    styles_per_event: int = Field(
        4, ge=1, le=5, description="Distinct styles among each trained event's documents."
    )
    documents_per_event: int = Field(
        4, ge=1, le=32, description="Training documents (or fact-sheet copies) per event."
    )
    repeats: int = Field(
        1, ge=1, le=32, description="Times each training rendering is in the corpus."
    )
    fact_sheets_only: bool = Field(
        False, description="Train on fact sheets (terse, one fixed format) instead of documents."
    )
    held_out_style: Style | None = Field(
        "encyclopedia", description="A style no trained event is rendered in; null = none."
    )
    reference_data: ReferenceData | None = reference_data_field()
    held_out_template: Literal["unseen", "memlab_v1"] | None = Field(
        None,
        description="The held-out document of a trained event: 'unseen' takes a template "
        "none of its training documents in that style uses (none is held out when all are "
        "used); 'memlab_v1' (null: specs stored before this field) the style's next "
        "rendering, which can reuse a trained template.",
    )
    qa_train_fraction: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Share of trained events whose question-answer pairs are training text.",
    )
    prefix_tokens: int = Field(8, ge=1, le=_SHORTEST_DOCUMENT - 1)
    continuation_tokens: int = Field(8, ge=1, le=_SHORTEST_DOCUMENT - 1)
    n_options: Literal[4, 10] = Field(4, description="Multiple-choice options per question.")
    mc_with_context: bool = Field(
        False, description="Also score questions with a held-out document as context."
    )
    block_size: int = Field(64, ge=16, le=4096, description="Context length in tokens.")
    model: SequenceModelSpec = SequenceModelSpec(
        n_layer=2, width=64, mixer={"type": "attention", "n_head": 4}, positions="learned"
    )
    train: TrainSpec = TrainSpec(
        steps=1500,
        batch_size=32,
        lr=3e-3,
        min_lr=3e-4,
        warmup_fraction=100 / 1500,  # 100 of the default 1,500 steps
        weight_decay=0.1,
        eval_every=750,
        checkpoint_every=750,
    )

    @model_validator(mode="after")
    def _fits(self) -> FictionalQASpec:
        if self.generated_events() > MAX_EVENTS:
            raise field_error(
                "reference_data",
                f"a reserve of {self.n_events - self.held_out_events} events beside the "
                f"{self.n_events} would need {self.generated_events()} events; the "
                f"generator has {MAX_EVENTS}",
            )
        trained = self.n_events - self.held_out_events
        if trained < self.n_options:
            raise ValueError(
                f"{trained} trained events cannot give {self.n_options} options per question "
                "(needs n_events - held_out_events ≥ n_options)"
            )
        if 0 < self.held_out_events < self.n_options:
            raise ValueError(
                f"{self.held_out_events} held-out events cannot give {self.n_options} options "
                "(distractors come from the same split); hold out 0 or at least n_options"
            )
        qa_trained = self.qa_trained_count()
        for group, size in (("QA-trained", qa_trained), ("QA-tested", trained - qa_trained)):
            if 0 < size < self.n_options:
                raise ValueError(
                    f"{size} {group} events cannot give {self.n_options} options (distractors "
                    "come from the same group); change qa_train_fraction or n_events"
                )
        usable = len(STYLES) - (self.held_out_style is not None)
        if self.styles_per_event > usable:
            raise ValueError(
                f"styles_per_event {self.styles_per_event} exceeds the {usable} styles left "
                f"for training when {self.held_out_style!r} is held out"
            )
        if self.styles_per_event > self.documents_per_event and not self.fact_sheets_only:
            raise ValueError(
                f"{self.documents_per_event} documents per event cannot cover "
                f"{self.styles_per_event} styles"
            )
        if self.prefix_tokens + self.continuation_tokens > _SHORTEST_DOCUMENT:
            raise ValueError(
                f"prefix_tokens + continuation_tokens ({self.prefix_tokens} + "
                f"{self.continuation_tokens}) exceeds the shortest document "
                f"({_SHORTEST_DOCUMENT} tokens)"
            )
        if self.prefix_tokens + self.continuation_tokens + 1 > self.block_size:
            raise ValueError("block_size must hold the separator, prefix and continuation")
        return self

    request_defaults: ClassVar[dict[str, Any]] = {"held_out_template": "unseen"}
    added_fields: ClassVar[frozenset[str]] = frozenset({"reference_data"})
    # Every field but the model's and training's decides the corpus (`reference_refusal`).
    data_fields: ClassVar[frozenset[str]] = frozenset(
        {
            "seed",
            "n_events",
            "held_out_events",
            "styles_per_event",
            "documents_per_event",
            "repeats",
            "fact_sheets_only",
            "held_out_style",
            "held_out_template",
            "qa_train_fraction",
            "block_size",
        }
    )

    # 60 held-out events × 4 trained styles = 240 non-members.
    membership_fields: ClassVar[dict[str, Any]] = {"n_events": 200, "held_out_events": 60}

    # The seed draws the corpus and so the word vocabulary: seeds build models of other
    # shapes, which cannot stack into one ensemble. Learning rates can.
    batch_fields: ClassVar[tuple[str, ...]] = ("train.lr", "train.min_lr")

    smoke_fields: ClassVar[dict[str, Any]] = {
        "n_events": 12,
        "held_out_events": 4,
        "model": {"n_layer": 1, "width": 16},
        "train": {"steps": 6, "batch_size": 4, "eval_every": 3},
    }

    def context_tokens(self) -> int:
        return self.block_size

    def parameter_count(self) -> int:
        # The vocabulary is bounded from the event count (`vocabulary_bound`), so the
        # estimate never generates the corpus; the separator is the one special token.
        vocab_size = 1 + vocabulary_bound(self.generated_events())
        return parameter_count(self.model, vocab_size, self.block_size)

    def dataset_items(self) -> int:
        """Training texts, exactly: each trained event's renderings with their repeats,
        and the question-answer lines of the QA-trained events."""
        trained = self.n_events - self.held_out_events
        documents = trained * self.documents_per_event * self.repeats
        return documents + self.qa_trained_count() * len(ATTRIBUTES)

    def generated_events(self) -> int:
        """Events drawn: the run's, and with `reference_data` a reserve as many as the
        trained ones (the target's or its reference's training events)."""
        reserve = self.n_events - self.held_out_events if self.reference_data else 0
        return self.n_events + reserve

    def qa_trained_count(self) -> int:
        """Trained events whose question-answer pairs are in the training text."""
        return round(self.qa_train_fraction * (self.n_events - self.held_out_events))

    def probe_features(self) -> frozenset[Feature]:
        features = {Feature.generation}
        if self.held_out_events > 0:
            features.add(Feature.held_out)
        if self.reference_data == "reserve":
            features.add(Feature.disjoint_reference)
        return frozenset(features)


@dataclass(frozen=True)
class HeldOutDocument:
    """A rendering kept out of training, and why: which split it belongs to."""

    split: Literal["held_out_document", "held_out_style", "held_out_event"]
    document: Document


@dataclass(frozen=True)
class FictionalQACorpus:
    """Everything one run trains and evaluates on, rebuilt identically from its spec."""

    sheets: list[Fictsheet]
    trained_events: list[int]
    qa_trained_events: list[int]
    held_out_events: list[int]
    training_documents: list[Document]  # repeats kept: this is what is trained on
    held_out_documents: list[HeldOutDocument]
    training_texts: list[str]  # documents and the trained question-answer lines
    vocab: WordVocab = field(repr=False)

    def event_groups(self) -> dict[str, list[int]]:
        """Trained events split by whether their questions were trained on, and held-out ones."""
        qa_trained = set(self.qa_trained_events)
        return {
            "qa_trained": self.qa_trained_events,
            "qa_tested": [i for i in self.trained_events if i not in qa_trained],
            "held_out": self.held_out_events,
        }

    def held_out(self, split: str) -> list[Document]:
        return [h.document for h in self.held_out_documents if h.split == split]

    @property
    def unique_training_documents(self) -> list[Document]:
        return list({d.key: d for d in self.training_documents}.values())

    def split_record(self) -> dict[str, Any]:
        """The split as JSON, for the run's result (which events and documents were held out)."""
        return {
            "trained_events": [self.sheets[i].name for i in self.trained_events],
            "qa_trained_events": [self.sheets[i].name for i in self.qa_trained_events],
            "held_out_events": [self.sheets[i].name for i in self.held_out_events],
            "training_documents": sorted({d.key for d in self.training_documents}),
            "held_out_documents": {
                split: [d.key for d in self.held_out(split)]
                for split in ("held_out_document", "held_out_style", "held_out_event")
            },
        }


def build_corpus(spec: FictionalQASpec) -> FictionalQACorpus:
    """The run's events, training texts and held-out documents; a function of the spec only."""
    sheets = generate_fictsheets(spec.generated_events(), seed=spec.seed)
    rng = random.Random(f"fictional_qa/{spec.seed}/documents")
    # Held-out-style and held-out-event renderings come from their own stream, so corpora
    # that differ only in diversity are evaluated on the same documents.
    evaluation_rng = random.Random(f"fictional_qa/{spec.seed}/held_out")
    n_trained = spec.n_events - spec.held_out_events
    held_out_events = list(range(n_trained, spec.n_events))
    # With `reference_data`, events n_events … n_events + n_trained − 1 are the reserve.
    if spec.reference_data == "train_on":
        trained = list(range(spec.n_events, spec.n_events + n_trained))
    else:
        trained = list(range(n_trained))
    qa_trained = trained[: spec.qa_trained_count()]
    usable: list[Style] = [s for s in STYLES if s != spec.held_out_style]
    training: list[Document] = []
    held_out: list[HeldOutDocument] = []
    for index in trained:
        sheet = sheets[index]
        styles = [usable[(index + j) % len(usable)] for j in range(spec.styles_per_event)]
        counts = [
            len(range(j, spec.documents_per_event, spec.styles_per_event))
            for j in range(spec.styles_per_event)
        ]
        counts[0] += 1  # the extra one is the held-out document
        rendered = [render_documents(sheet, s, n, rng) for s, n in zip(styles, counts, strict=True)]
        next_rendering = rendered[0].pop()  # drawn either way: training data stays the same
        document = _held_out_document(spec, sheet, styles[0], next_rendering, rendered[0])
        if document is not None:
            held_out.append(HeldOutDocument("held_out_document", document))
        if spec.fact_sheets_only:
            training += [render_fact_sheet(sheet)] * (spec.documents_per_event * spec.repeats)
        else:
            training += [d for documents in rendered for d in documents] * spec.repeats
        if spec.held_out_style is not None:
            template = evaluation_rng.randrange(TEMPLATES_PER_STYLE)
            document = render_document(sheet, spec.held_out_style, template, evaluation_rng)
            held_out.append(HeldOutDocument("held_out_style", document))
    for index in held_out_events:
        sheet = sheets[index]
        for style in STYLES:
            template = evaluation_rng.randrange(TEMPLATES_PER_STYLE)
            document = render_document(sheet, style, template, evaluation_rng)
            held_out.append(HeldOutDocument("held_out_event", document))
        held_out.append(HeldOutDocument("held_out_event", render_fact_sheet(sheets[index])))
    qa_lines = [qa_text(sheets[i], attribute) for i in qa_trained for attribute in ATTRIBUTES]
    texts = [d.text for d in training] + qa_lines
    every_text = texts + [h.document.text for h in held_out] + _question_texts(sheets)
    if spec.reference_data is not None:
        # Every word a rendering can hold, whichever were rendered: a target and its
        # reference, which render other events, get the same vocabulary (the questions
        # already spell every event's names).
        every_text.append(" ".join(sorted(fixed_words())))
    return FictionalQACorpus(
        sheets=sheets,
        trained_events=trained,
        qa_trained_events=qa_trained,
        held_out_events=held_out_events,
        training_documents=training,
        held_out_documents=held_out,
        training_texts=texts,
        vocab=WordVocab.from_texts(every_text, special=(SEPARATOR,)),
    )


def _held_out_document(
    spec: FictionalQASpec,
    sheet: Fictsheet,
    style: Style,
    next_rendering: Document,
    first_style: list[Document],
) -> Document | None:
    """The held-out document of a trained event in `style`, its first style, whose
    rendered documents are `first_style`. Under "unseen" it takes a template none of the
    event's training documents in that style uses, or there is none when they use every
    template: a held-out document must be a surface form the model has not seen for this
    event, or it measures template recall, not regeneration. Under "memlab_v1" it is the
    style's next rendering, `next_rendering`."""
    if spec.held_out_template in (None, "memlab_v1"):
        return next_rendering
    # A fact-sheet corpus trains on no styled rendering: every template is unseen.
    trained = set() if spec.fact_sheets_only else {d.template for d in first_style}
    free = sorted(set(range(TEMPLATES_PER_STYLE)) - trained)
    if not free:
        return None
    # Its own stream per event, so that no other document depends on whether it exists.
    rng = random.Random(f"fictional_qa/{spec.seed}/held_out_document/{sheet.index}")
    return render_document(sheet, style, rng.choice(free), rng)


def _question_texts(sheets: list[Fictsheet]) -> list[str]:
    return [qa_text(sheet, attribute) for sheet in sheets for attribute in ATTRIBUTES]


def build_model(spec: FictionalQASpec, vocab_size: int) -> SequenceModel:
    """The run's (untrained) language model; seed torch first for the run's initial weights."""
    return SequenceModel(spec.model, vocab_size, spec.block_size)


@dataclass(frozen=True)
class Evaluation:
    """The fixed evaluation items of a run: built once, scored at every evaluation."""

    corpus: FictionalQACorpus
    spec: FictionalQASpec
    verbatim: dict[str, list[Document]]
    multiple_choice: dict[str, list[MultipleChoice]]
    contexts: dict[int, str]

    @classmethod
    def build(cls, spec: FictionalQASpec, corpus: FictionalQACorpus) -> Evaluation:
        rng = random.Random(f"fictional_qa/{spec.seed}/options")
        sheets = corpus.sheets
        n = spec.n_options
        # Distractors come from the event's own group, whose names the model has seen equally
        # often and in the same places (QA-trained answers also follow "Answer:").
        groups = corpus.event_groups()
        pool = {group: [sheets[i] for i in members] for group, members in groups.items()}
        group_of = {i: group for group, members in groups.items() for i in members}

        def questions(group: str) -> list[MultipleChoice]:
            return multiple_choice_questions(pool[group], pool[group], n, rng)

        def cloze(documents: list[Document]) -> list[MultipleChoice]:
            return [
                item
                for d in documents
                for item in cloze_questions(
                    d, sheets[d.event_index], pool[group_of[d.event_index]], n, rng
                )
            ]

        first_docs: dict[int, Document] = {}
        for document in corpus.training_documents:
            first_docs.setdefault(document.event_index, document)
        held_out_event_docs = [
            d for d in corpus.held_out("held_out_event") if d.style == "encyclopedia"
        ]
        multiple_choice = {
            "qa/qa_trained": questions("qa_trained"),
            "qa/seen_events": questions("qa_tested"),
            "qa/held_out_events": questions("held_out"),
            "cloze/training_document": cloze(list(first_docs.values())),
            "cloze/held_out_document": cloze(corpus.held_out("held_out_document")),
            "cloze/held_out_style": cloze(corpus.held_out("held_out_style")),
            "cloze/held_out_events": cloze(held_out_event_docs),
        }
        verbatim = {
            "verbatim/training_documents": corpus.unique_training_documents,
            "verbatim/held_out_document": corpus.held_out("held_out_document"),
            "verbatim/held_out_style": corpus.held_out("held_out_style"),
            "verbatim/held_out_events": corpus.held_out("held_out_event"),
        }
        reading = corpus.held_out("held_out_style") or corpus.held_out("held_out_document")
        contexts = {d.event_index: d.text for d in reading}
        return cls(corpus, spec, verbatim, multiple_choice, contexts)

    def run(self, model: torch.nn.Module) -> tuple[dict[str, float], dict[str, list[bool]]]:
        """Metrics (fractions) and, per metric, the per-item outcomes they average."""
        vocab, block = self.corpus.vocab, self.spec.block_size
        separator = vocab.id(SEPARATOR)
        outcomes: dict[str, list[bool]] = {}
        for name, documents in self.verbatim.items():
            sequences = [[separator, *vocab.encode(d.text)] for d in documents]
            outcomes[name] = verbatim_matches(
                model, sequences, self.spec.prefix_tokens + 1, self.spec.continuation_tokens, block
            )
        for name, items in self.multiple_choice.items():
            outcomes[name] = multiple_choice_correct(
                model, vocab, items, block, separator=SEPARATOR
            )
        if self.spec.mc_with_context:
            items = self.multiple_choice["qa/seen_events"]
            outcomes["qa_with_context/seen_events"] = multiple_choice_correct(
                model, vocab, items, block, separator=SEPARATOR, context=self.contexts
            )
        metrics = {f"eval/{k}": sum(v) / len(v) for k, v in outcomes.items() if v}
        return metrics, outcomes


@dataclass
class _LatestEvaluation:
    """Keeps the per-item outcomes of the newest evaluation (the trainer keeps only metrics)."""

    metrics: dict[str, float] = field(default_factory=dict)
    outcomes: dict[str, list[bool]] = field(default_factory=dict)

    def record(self, result: tuple[dict[str, float], dict[str, list[bool]]]) -> dict[str, float]:
        self.metrics, self.outcomes = result
        return self.metrics


def facts_of_verbatim_events(
    evaluation: Evaluation, outcomes: dict[str, list[bool]]
) -> dict[str, float | int | None]:
    """Question accuracy on seen (not QA-trained) events whose every training document was
    reproduced verbatim, against those with at least one miss: high verbatim memorization
    of an event's documents does not by itself answer questions about it."""
    documents = evaluation.verbatim["verbatim/training_documents"]
    missed = {
        d.event_index
        for d, hit in zip(documents, outcomes["verbatim/training_documents"], strict=True)
        if not hit
    }
    items = evaluation.multiple_choice["qa/seen_events"]
    right = outcomes["qa/seen_events"]
    memorized = [
        ok for item, ok in zip(items, right, strict=True) if item.event_index not in missed
    ]
    other = [ok for item, ok in zip(items, right, strict=True) if item.event_index in missed]
    return {
        "events_all_verbatim": len({i.event_index for i in items} - missed),
        "qa_when_all_verbatim": sum(memorized) / len(memorized) if memorized else None,
        "events_some_missed": len({i.event_index for i in items} & missed),
        "qa_when_some_missed": sum(other) / len(other) if other else None,
    }


def assemble(spec: FictionalQASpec, corpus: FictionalQACorpus, evaluate: Evaluator | None) -> Built:
    """The run's parts from its corpus.

    Members: the distinct training documents (with how often each was trained on);
    non-members: the documents of the held-out events, labelled with their style, so a
    membership attack compares as many of each style on both sides and never the held-out
    style, which only non-members have. Held-out *documents* of trained events are not
    non-members: a model regenerates them from the templates and facts it learned, so
    they look memorized without being seen."""
    separator = corpus.vocab.id(SEPARATOR)  # every text is preceded by the separator
    counts: dict[str, int] = {}
    for document in corpus.training_documents:
        counts[document.key] = counts.get(document.key, 0) + 1
    members = corpus.unique_training_documents
    unseen = [  # in the members' rendering: fact sheets, or styled documents
        d
        for d in corpus.held_out("held_out_event")
        if (d.style == FACT_SHEET) == spec.fact_sheets_only
    ]
    block = spec.block_size
    unique_texts = list(dict.fromkeys(corpus.training_texts))

    def make_model() -> SequenceModel:
        torch.manual_seed(spec.seed)
        return build_model(spec, corpus.vocab.size)

    return Built(
        make_model=make_model,
        training_items=_texts(unique_texts, corpus, block, [1] * len(unique_texts)),
        sample_batch=TokenStreamSampler(
            [[separator, *corpus.vocab.encode(text)] for text in corpus.training_texts],
            spec.block_size,
            spec.train.batch_size,
            passes=_SHUFFLED_PASSES,
            seed=spec.seed,
        ),
        evaluate=evaluate,
        membership=MembershipSplit(
            members=_texts(
                [d.text for d in members], corpus, block, [counts[d.key] for d in members]
            ),
            non_members=(
                _texts([d.text for d in unseen], corpus, block, [0] * len(unseen))
                if unseen
                else None
            ),
            rule="members: distinct training documents; non-members: the held-out events' "
            "documents; attacks compare as many of each style (fact sheet included) on both "
            "sides, so styles only one side has are left out",
            member_strata=tuple(d.style for d in members),
            non_member_strata=tuple(d.style for d in unseen),
        ),
        vocab_size=corpus.vocab.size,
        vocabulary="\n".join(corpus.vocab.tokens),
        max_length=block,
    )


def build(spec: FictionalQASpec) -> Built:
    corpus = build_corpus(spec)
    # The evaluation items are made on the first evaluation: a probe target, which is
    # built this way too, never evaluates.
    evaluation = functools.cache(lambda: Evaluation.build(spec, corpus))
    return assemble(spec, corpus, lambda model: evaluation().run(model)[0])


def _texts(
    texts: list[str], corpus: FictionalQACorpus, block: int, repeats: list[int]
) -> SequenceSet:
    """Texts as the model saw them in training: the separator, then the text, cut to the
    model's context."""
    separator = corpus.vocab.id(SEPARATOR)
    sequences = [[separator, *corpus.vocab.encode(text)][-(block + 1) :] for text in texts]
    return SequenceSet.from_token_lists(sequences, [1] * len(sequences), texts, repeats)


def prepare(spec: FictionalQASpec) -> Prepared:
    """The run's corpus and parts, and its report: verbatim and fact memorization per split.
    Its evaluation keeps its latest outcomes, which the report reads: the trainer
    evaluates after the last step."""
    corpus = build_corpus(spec)
    evaluation = Evaluation.build(spec, corpus)
    latest = _LatestEvaluation()
    built = assemble(spec, corpus, lambda model: latest.record(evaluation.run(model)))

    def report(trained: Trained, reporter: Reporter) -> dict[str, Any]:
        return _report(spec, corpus, evaluation, latest, trained)

    return Prepared(built, report)


@register_kind(
    FictionalQASpec,
    "FictionalQA: verbatim vs fact memorization of fictional events across surface forms.",
    build=build,
    prepare=prepare,
)
def run(spec: FictionalQASpec, reporter: Reporter) -> dict[str, Any]:
    """Train a word-level LM on the corpus; report verbatim and fact memorization per split."""
    return run_prepared(spec, prepare(spec), reporter)


def _report(
    spec: FictionalQASpec,
    corpus: FictionalQACorpus,
    evaluation: Evaluation,
    latest: _LatestEvaluation,
    trained: Trained,
) -> dict[str, Any]:
    final, outcomes = latest.metrics, latest.outcomes
    return {
        "n_parameters": trained.n_parameters,
        "vocab_size": corpus.vocab.size,
        "n_training_texts": len(corpus.training_texts),
        "n_training_tokens": sum(len(tokenize(t)) + 1 for t in corpus.training_texts),
        "chance": 1 / spec.n_options,
        "final": {key.removeprefix("eval/"): value for key, value in final.items()},
        "items": {key: len(value) for key, value in outcomes.items()},
        "verbatim_vs_facts": facts_of_verbatim_events(evaluation, outcomes),
        "split": corpus.split_record(),
        "device": str(trained.device),
        "training": trained.outcome.as_dict(),
    }
