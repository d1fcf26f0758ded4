"""`cross_modal`: facts learned in one modality, recalled from the other.

Reproduces the setup of "Quantifying Cross-Modality Memorization in Vision-Language
Models" (Wen et al. 2025; only the abstract is public, so every size and choice here is
memlab's own). Synthetic personas (core/data/personas.py) each have a made-up name, a
procedurally drawn face-like glyph seen in several noisy views, and one value per
attribute (city, job, …). Each persona's facts are stated in one *source* modality:
  - text:  "Nounddraithnond lives_in Oslo"    → tokens [NAME, lives_in] → Oslo
  - image: "img0153 lives_in Oslo"            → tokens [IMAGE, lives_in] → Oslo
and every trained persona's training views are bound to its name ("img0153 Nounddraithnond":
the name is predicted at the image's own position, with no relation token).
A fact is then asked in the *target* modality it was never stated in: the name of an
image-taught persona, or a held-out view (new noise, never trained on) of a text-taught
one. Per direction (text→image, image→text) the result gives source and target accuracy,
chance (1 / values per attribute), the gap (source − target) and the normalized transfer
(target − chance) / (source − chance), and, apart from them, the alignment accuracy:
image → name on held-out views. A poor binding would leave the target at chance and the
"gap" would measure the binding, so a direction's gap and transfer are null, with the
reason, while its alignment accuracy is below `alignment_threshold` (0.9).

Multi-hop (`multi_hop`): every persona also has a friend, another persona whose facts
are stated in text, and "A friend B" is stated in A's source modality. A chain asks A's
friend from A in one modality, then the first attribute of the friend the model named,
by name; it counts when both hops are right.

Mitigation (`aligned_fraction`): besides the evaluated personas, `bridge_personas`
others are trained; this fraction of them has its facts stated in both modalities
(aligned image–text pairs). They are never evaluated, so a sweep over the fraction
changes one thing: how many *other* personas show the model that a face and its name
answer alike.

Model: one decoder (`core.models.image_prefix`): a `SequenceModel` whose image-reference
tokens are embedded by a tiny conv encoder reading the image's pixels, so names and
images share every block and the recall head. Two defaults matter for transfer, and
both are memlab's choices (the paper's model is not public): embeddings are tied, so a
name's output vector is its input vector, and the binding is read at the image's own
position of a one-layer decoder. Learning image → name there pulls the encoder's output
toward the vector the name is stored under, the shared identity a fact needs to cross
modalities. With the binding read after a relation token ("img0153 named NAME"), or two
layers, the decoder learned the binding as a map of its own and, in trial runs, no fact
crossed in either direction. Every item is two input tokens with next-token
cross-entropy on the answer, through the normal Trainer (`prepare()` is given, so seeds
and learning rates batch in a sweep); a text fact is sampled as often as one image fact
is over all its training views. Views differ by pixel noise and brightness; a shift
(`images.shift`) is off by default: with one pixel of shift and 8 training views the
binding reached only about 0.9 on held-out views in trial runs.

Membership: members are the training items (both modalities); non-members are the same
templates for `held_out_personas` personas from the same draw that are never trained,
stratified by template so an attack cannot win by telling text from images.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, model_validator

from core.built import Built, MembershipSplit
from core.data.personas import (
    MAX_ATTRIBUTES,
    MAX_VALUES,
    GlyphSpec,
    Persona,
    attribute_values,
    draw_personas,
    relations,
    render_views,
)
from core.evaluation import argmax_recall
from core.models.image_prefix import (
    ImageEncoderSpec,
    ImagePrefixModel,
    image_prefix_parameter_count,
)
from core.models.sequence_model import SequenceModelSpec
from core.prepared import Prepared
from core.probes.features import Feature
from core.probes.target import IGNORE_INDEX, SequenceSet
from core.registry import register_kind
from core.reporter import Reporter
from core.spec_model import SpecModel, field_error
from core.specs import TrainedSpec, TrainSpec
from core.training.fit import Trained, run_prepared
from core.training.samplers import ExampleSampler

MAX_TOTAL_PERSONAS = 320  # the faces stay two features apart (personas.MIN_FEATURE_DISTANCE)
SEQUENCE_LENGTH = 2  # [subject, relation] → value
DIRECTIONS = ("text_to_image", "image_to_text")
Modality = Literal["text", "image"]


class ImageSpec(SpecModel):
    """The face glyphs: side, nuisance, and how many views train and how many test."""

    size: int = Field(16, ge=8, le=32, description="Image side in pixels (a multiple of 4).")
    noise: float = Field(0.08, ge=0, le=1, description="Std of the Gaussian pixel noise.")
    shift: int = Field(0, ge=0, le=4, description="Largest shift of a view, in pixels.")
    train_views: int = Field(8, ge=1, le=16, description="Views per persona trained on.")
    test_views: int = Field(
        2, ge=1, le=16, description="Further views per persona, never trained: image queries."
    )

    @model_validator(mode="after")
    def _pools_evenly(self) -> ImageSpec:
        if self.size % 4:
            raise field_error("size", f"size {self.size} is not a multiple of 4 (two 2×2 pools)")
        return self

    @property
    def views(self) -> int:
        return self.train_views + self.test_views


class CrossModalSpec(TrainedSpec):
    """Personas taught in one modality and asked in the other; sweep `aligned_fraction`
    for the mitigation, `multi_hop` for the two-hop variant."""

    kind: Literal["cross_modal"] = "cross_modal"
    personas: int = Field(
        64, ge=4, le=256, description="Evaluated personas: half taught in text, half in images."
    )
    bridge_personas: int = Field(
        48, ge=0, le=256, description="Other personas, trained but never evaluated."
    )
    aligned_fraction: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Mitigation: the fraction of the bridge personas whose facts are stated in "
        "both modalities (aligned image–text pairs); the rest keep one.",
    )
    held_out_personas: int = Field(
        32, ge=1, le=256, description="Personas never trained on: the membership non-members."
    )
    attributes: int = Field(
        3, ge=1, le=MAX_ATTRIBUTES, description="Facts per persona (city, job, pet, …)."
    )
    values_per_attribute: int = Field(
        8, ge=2, le=MAX_VALUES, description="Values each attribute draws from; chance = 1/this."
    )
    multi_hop: bool = Field(
        True, description="Give every persona a friend and report two-hop chains."
    )
    alignment_threshold: float = Field(
        0.9,
        ge=0,
        le=1,
        description="A direction's gap is reported only when its image → name accuracy on "
        "held-out views reaches this.",
    )
    images: ImageSpec = ImageSpec()
    encoder: ImageEncoderSpec = ImageEncoderSpec()
    model: SequenceModelSpec = SequenceModelSpec(
        n_layer=1,
        width=64,
        mixer={"type": "attention", "n_head": 2},
        ffn_ratio=4.0,
        positions="learned",
        tie_embeddings=True,
    )
    train: TrainSpec = TrainSpec(
        steps=1000,
        batch_size=128,
        lr=3e-3,
        min_lr=3e-4,
        warmup_fraction=0.05,
        weight_decay=0.0,
        eval_every=250,
        checkpoint_every=1000,
    )

    membership_fields: ClassVar[dict[str, Any]] = {"held_out_personas": 40}
    smoke_fields: ClassVar[dict[str, Any]] = {
        "personas": 8,
        "bridge_personas": 4,
        "aligned_fraction": 0.5,
        "held_out_personas": 4,
        "attributes": 2,
        "values_per_attribute": 4,
        "images": {"train_views": 2, "test_views": 1},
        "encoder": {"channels": 4},
        "model": {"n_layer": 1, "width": 16},
        "train": {"steps": 6, "batch_size": 16, "eval_every": 3},
    }

    @model_validator(mode="after")
    def _faces_fit(self) -> CrossModalSpec:
        total = self.personas + self.bridge_personas + self.held_out_personas
        if total > MAX_TOTAL_PERSONAS:
            raise field_error(
                "personas",
                f"personas + bridge_personas + held_out_personas = {total} exceeds "
                f"{MAX_TOTAL_PERSONAS}: there are too few distinct faces",
            )
        if self.personas % 2:
            raise field_error("personas", f"personas {self.personas} must be even (two halves)")
        return self

    def context_tokens(self) -> int:
        return SEQUENCE_LENGTH

    def total_personas(self) -> int:
        return self.personas + self.bridge_personas + self.held_out_personas

    def word_count(self) -> int:
        """Words of the vocabulary: padding, `friend`, relations, values, names."""
        return (
            2
            + self.attributes
            + self.attributes * self.values_per_attribute
            + self.total_personas()
        )

    def parameter_count(self) -> int:
        return image_prefix_parameter_count(
            self.model, self.encoder, self.word_count(), self.images.size, SEQUENCE_LENGTH
        )

    def dataset_items(self) -> int:
        """An upper bound on the training items: every trained persona in both modalities."""
        trained = self.personas + self.bridge_personas
        per_persona = (self.attributes + 1) * (1 + self.images.train_views) + self.images.views
        return trained * per_persona

    def probe_features(self) -> frozenset[Feature]:
        return frozenset({Feature.held_out})


@dataclass(frozen=True)
class Cast:
    """The run's personas and their roles.

    source:  each persona's source modality ("text" or "image").
    role:    "evaluated", "bridge" or "held_out".
    both:    bridge personas whose facts are also stated in the other modality.
    friend:  each persona's friend (an index), or None without `multi_hop`.
    """

    personas: tuple[Persona, ...]
    source: tuple[Modality, ...]
    role: tuple[str, ...]
    both: frozenset[int]
    friend: tuple[int | None, ...]

    def indices(self, role: str, source: Modality | None = None) -> list[int]:
        return [
            i
            for i, r in enumerate(self.role)
            if r == role and (source is None or self.source[i] == source)
        ]


def draw_cast(spec: CrossModalSpec) -> Cast:
    """The personas and their roles, from `spec.seed`: a seeded shuffle gives the roles,
    and each role alternates text and image. Which bridge personas are aligned, and the
    friends, never depend on `aligned_fraction` beyond the count it sets."""
    personas = draw_personas(
        spec.total_personas(), spec.attributes, spec.values_per_attribute, spec.seed
    )
    rng = random.Random(spec.seed + 1)
    order = list(range(len(personas)))
    rng.shuffle(order)
    role = [""] * len(personas)
    source: list[Modality] = ["text"] * len(personas)
    groups = (
        ("evaluated", order[: spec.personas]),
        ("bridge", order[spec.personas : spec.personas + spec.bridge_personas]),
        ("held_out", order[spec.personas + spec.bridge_personas :]),
    )
    for name, members in groups:
        for rank, index in enumerate(members):
            role[index] = name
            source[index] = "text" if rank % 2 == 0 else "image"
    bridges = groups[1][1]
    both = frozenset(bridges[: round(spec.aligned_fraction * len(bridges))])
    friend: list[int | None] = [None] * len(personas)
    if spec.multi_hop:
        # Friends are trained personas whose facts are stated in text, so the chain's
        # second hop asks a fact by the name it was stated with.
        pool = [i for i in order if role[i] != "held_out" and source[i] == "text"]
        for index in order:
            friend[index] = rng.choice([i for i in pool if i != index])
    return Cast(tuple(personas), tuple(source), tuple(role), both, tuple(friend))


@dataclass(frozen=True)
class Vocab:
    """Word ids, then one image id per bank image (persona-major, views within)."""

    words: tuple[str, ...]
    views: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "_ids", {word: i for i, word in enumerate(self.words)})

    @property
    def n_words(self) -> int:
        return len(self.words)

    def id(self, word: str) -> int:
        return self._ids[word]  # type: ignore[attr-defined,no-any-return]

    def image(self, persona: int, view: int) -> int:
        return self.n_words + persona * self.views + view

    def text(self, token: int) -> str:
        if token < self.n_words:
            return self.words[token]
        return f"img{token - self.n_words:04d}"


def build_vocab(spec: CrossModalSpec, cast: Cast) -> Vocab:
    words = (
        "<pad>",
        "friend",
        *relations(spec.attributes),
        *attribute_values(spec.attributes, spec.values_per_attribute),
        *(persona.name for persona in cast.personas),
    )
    return Vocab(words, spec.images.views)


# A question: subject token, relation token (or NO_RELATION), the answer token.
Question = tuple[int, int, int]
# A binding "img0153 Nounddraithnond" has no relation: the name is predicted at the image's
# own position, where the decoder reads the encoder's output directly (see the docstring).
NO_RELATION = -1


@dataclass(frozen=True)
class Items:
    """Questions with their template (e.g. "image fact") and training weight."""

    questions: tuple[Question, ...]
    templates: tuple[str, ...]
    weights: tuple[int, ...]

    def __add__(self, other: Items) -> Items:
        return Items(
            self.questions + other.questions,
            self.templates + other.templates,
            self.weights + other.weights,
        )

    def sequences(self, vocab: Vocab) -> SequenceSet:
        return as_sequences(self.questions, vocab, self.weights)


def as_sequences(
    questions: tuple[Question, ...] | list[Question],
    vocab: Vocab,
    weights: tuple[int, ...] | None = None,
) -> SequenceSet:
    """Questions as (N, 2) inputs [subject, relation] scored on the answer only; a binding
    (NO_RELATION) is [subject, padding], scored at the subject's position."""
    inputs = torch.tensor(
        [[s, r if r != NO_RELATION else 0] for s, r, _ in questions], dtype=torch.long
    ).view(-1, 2)
    targets = torch.full_like(inputs, IGNORE_INDEX)
    for row, (_, relation, answer) in enumerate(questions):
        targets[row, 1 if relation != NO_RELATION else 0] = answer
    texts = tuple(" ".join(vocab.text(t) for t in q if t != NO_RELATION) for q in questions)
    repeats = torch.tensor(weights, dtype=torch.long) if weights is not None else None
    return SequenceSet(inputs, targets, texts, repeats)


def persona_items(
    spec: CrossModalSpec, cast: Cast, vocab: Vocab, index: int, modalities: tuple[Modality, ...]
) -> Items:
    """What training states about persona `index` in `modalities`: its name bound to each
    training view, and its facts (and friend) with the persona named or shown. A text
    statement weighs `train_views` (it is sampled as often as all the views together)."""
    persona = cast.personas[index]
    views = range(spec.images.train_views)
    name = vocab.id(persona.name)
    facts = [(vocab.id(r), vocab.id(v)) for r, v in persona.facts]
    friend = cast.friend[index]
    if friend is not None:
        facts.append((vocab.id("friend"), vocab.id(cast.personas[friend].name)))
    questions: list[Question] = [(vocab.image(index, v), NO_RELATION, name) for v in views]
    templates = ["image name"] * len(questions)
    weights = [1] * len(questions)
    for modality in modalities:
        for relation, answer in facts:
            kind = "friend" if relation == vocab.id("friend") else "fact"
            if modality == "text":
                questions.append((name, relation, answer))
                templates.append(f"text {kind}")
                weights.append(spec.images.train_views)
            else:
                for v in views:
                    questions.append((vocab.image(index, v), relation, answer))
                    templates.append(f"image {kind}")
                    weights.append(1)
    return Items(tuple(questions), tuple(templates), tuple(weights))


def _modalities(cast: Cast, index: int) -> tuple[Modality, ...]:
    own = cast.source[index]
    other: Modality = "image" if own == "text" else "text"
    return (own, other) if index in cast.both else (own,)


@dataclass(frozen=True)
class Direction:
    """One direction's evaluation questions, for the personas taught in `source`.

    source / target: the facts asked with the persona in its source modality and in the
    other one (images: every held-out view); alignment: held-out views → name;
    chains_source / chains_target: (subject token, friend id, friend's first-fact answer).
    """

    name: str
    source: SequenceSet
    target: SequenceSet
    alignment: SequenceSet
    chains_source: tuple[tuple[int, int, int], ...]
    chains_target: tuple[tuple[int, int, int], ...]


def build_direction(
    spec: CrossModalSpec, cast: Cast, vocab: Vocab, source: Modality, names: dict[int, int]
) -> Direction:
    target: Modality = "image" if source == "text" else "text"
    people = cast.indices("evaluated", source)

    def subjects(index: int, modality: Modality) -> list[int]:
        if modality == "text":
            return [names[index]]
        first = spec.images.train_views
        return [vocab.image(index, v) for v in range(first, spec.images.views)]

    def facts(modality: Modality) -> SequenceSet:
        questions = [
            (subject, vocab.id(r), vocab.id(v))
            for index in people
            for subject in subjects(index, modality)
            for r, v in cast.personas[index].facts
        ]
        return as_sequences(questions, vocab)

    def chains(modality: Modality) -> tuple[tuple[int, int, int], ...]:
        rows = []
        for index in people:
            friend = cast.friend[index]
            if friend is None:
                continue
            answer = vocab.id(cast.personas[friend].facts[0][1])
            rows += [(subject, names[friend], answer) for subject in subjects(index, modality)]
        return tuple(rows)

    alignment = as_sequences(
        [(s, NO_RELATION, names[i]) for i in people for s in subjects(i, "image")], vocab
    )
    return Direction(
        f"{source}_to_{target}",
        facts(source),
        facts(target),
        alignment,
        chains(source),
        chains(target),
    )


@dataclass(frozen=True)
class CrossModalData:
    """A run's vocabulary, image bank, training and held-out items and evaluation sets."""

    vocab: Vocab
    bank: torch.Tensor  # (personas · views, 1, H, W)
    train: Items
    held_out: Items
    directions: tuple[Direction, ...]
    first_relation: int

    def digest(self) -> str:
        """SHA-256 of the items and the bank, to check that a rebuild found the same data."""
        data = {"train": self.train.questions, "held_out": self.held_out.questions}
        digest = hashlib.sha256(json.dumps(data, separators=(",", ":")).encode())
        digest.update(self.bank.numpy().tobytes())
        return digest.hexdigest()


def build_dataset(spec: CrossModalSpec) -> CrossModalData:
    """The run's data, a pure function of the spec (its seed draws personas and pixels)."""
    cast = draw_cast(spec)
    vocab = build_vocab(spec, cast)
    glyph = GlyphSpec(spec.images.size, spec.images.shift, spec.images.noise)
    bank = render_views(list(cast.personas), spec.images.views, glyph, seed=spec.seed + 2)
    names = {i: vocab.id(p.name) for i, p in enumerate(cast.personas)}
    train = Items((), (), ())
    for index in cast.indices("evaluated") + cast.indices("bridge"):
        train = train + persona_items(spec, cast, vocab, index, _modalities(cast, index))
    held_out = Items((), (), ())
    for index in cast.indices("held_out"):
        held_out = held_out + persona_items(spec, cast, vocab, index, (cast.source[index],))
    directions = tuple(
        build_direction(spec, cast, vocab, source, names) for source in ("text", "image")
    )
    first_relation = vocab.id(relations(spec.attributes)[0])
    return CrossModalData(vocab, bank, train, held_out, directions, first_relation)


def build_model(spec: CrossModalSpec, data: CrossModalData) -> ImagePrefixModel:
    """The run's model at initialisation; seeds torch's global RNG with `spec.seed`."""
    torch.manual_seed(spec.seed)
    return ImagePrefixModel(
        spec.model, spec.encoder, data.vocab.n_words, data.bank, SEQUENCE_LENGTH
    )


@torch.no_grad()
def chain_accuracy(
    model: torch.nn.Module,
    chains: tuple[tuple[int, int, int], ...],
    friend_relation: int,
    first_relation: int,
) -> float | None:
    """Two hops, each the model's argmax: the friend of the subject, then the first fact of
    the friend it named; a chain counts when the friend and the answer are both right."""
    if not chains:
        return None
    device = next(model.parameters()).device
    subjects = torch.tensor([s for s, _, _ in chains], device=device)
    friends = torch.tensor([f for _, f, _ in chains], device=device)
    answers = torch.tensor([a for _, _, a in chains], device=device)
    first = torch.stack([subjects, torch.full_like(subjects, friend_relation)], dim=1)
    named = model(first)[:, 1].argmax(-1)  # (N,) the friend the model names
    second = torch.stack([named, torch.full_like(named, first_relation)], dim=1)
    said = model(second)[:, 1].argmax(-1)
    return float(((named == friends) & (said == answers)).double().mean())


def _accuracy(model: torch.nn.Module, items: SequenceSet) -> float:
    return argmax_recall(model, items.inputs, items.targets, batch_size=1024).accuracy


def evaluate_directions(model: torch.nn.Module, data: CrossModalData) -> dict[str, float]:
    """Every direction's accuracies, as the trainer's eval metrics."""
    metrics: dict[str, float] = {}
    friend = data.vocab.id("friend")
    for direction in data.directions:
        prefix = f"eval/{direction.name}"
        metrics[f"{prefix}/source_accuracy"] = _accuracy(model, direction.source)
        metrics[f"{prefix}/target_accuracy"] = _accuracy(model, direction.target)
        metrics[f"{prefix}/alignment_accuracy"] = _accuracy(model, direction.alignment)
        for side, chains in (
            ("source", direction.chains_source),
            ("target", direction.chains_target),
        ):
            value = chain_accuracy(model, chains, friend, data.first_relation)
            if value is not None:
                metrics[f"{prefix}/multi_hop_{side}_accuracy"] = value
    return metrics


def assemble(spec: CrossModalSpec, data: CrossModalData) -> Built:
    """The run's parts. Members: every training item, both modalities; non-members: the
    same templates for the held-out personas, never trained on."""
    members = data.train.sequences(data.vocab)
    non_members = data.held_out.sequences(data.vocab)
    pool = _sampling_pool(members)

    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        return {
            "eval/train_accuracy": _accuracy(model, members),
            **evaluate_directions(model, data),
        }

    return Built(
        make_model=lambda: build_model(spec, data),
        training_items=members,
        sample_batch=ExampleSampler(pool.inputs, pool.targets, spec.train.batch_size),
        evaluate=evaluate,
        membership=MembershipSplit(
            members=members,
            non_members=non_members,
            rule="members: every training item (names bound to images, facts and friends "
            "stated in text or shown with an image); non-members: the same templates for "
            f"{spec.held_out_personas} personas of the same draw never trained on, "
            "matched by template",
            member_strata=data.train.templates,
            non_member_strata=data.held_out.templates,
        ),
        vocab_size=data.vocab.n_words,
        vocabulary="\n".join(data.vocab.words) + f"\nimages:{data.bank.shape[0]}",
        max_length=SEQUENCE_LENGTH,
        notes={"images": "image tokens are ids from vocab_size on, read through the encoder"},
    )


def _sampling_pool(items: SequenceSet) -> SequenceSet:
    """Each item repeated by its weight, for uniform sampling."""
    assert items.repeats is not None
    rows = torch.repeat_interleave(torch.arange(len(items)), items.repeats)
    return SequenceSet(
        items.inputs[rows], items.targets[rows], tuple(items.texts[int(i)] for i in rows)
    )


def build(spec: CrossModalSpec) -> Built:
    return assemble(spec, build_dataset(spec))


def prepare(spec: CrossModalSpec) -> Prepared:
    """The run's data and parts, and its report: transfer, gap and alignment per direction."""
    data = build_dataset(spec)

    def report(trained: Trained, reporter: Reporter) -> dict[str, Any]:
        return _report(spec, data, trained)

    return Prepared(assemble(spec, data), report)


@register_kind(
    CrossModalSpec,
    "Cross-modality memorization: persona facts taught in text or images, recalled from the "
    "other modality; gap, alignment, multi-hop and an aligned-pairs mitigation.",
    build=build,
    prepare=prepare,
)
def run(spec: CrossModalSpec, reporter: Reporter) -> dict[str, Any]:
    """Train one model on the personas; report transfer across modalities."""
    return run_prepared(spec, prepare(spec), reporter)


def transfer_summary(
    source: float,
    target: float,
    alignment: float,
    chance: float,
    threshold: float,
) -> dict[str, Any]:
    """A direction's numbers: gap and normalized transfer only once the image ↔ name
    alignment reaches `threshold` (else null, with the reason), so a poor binding is not
    read as a poor transfer.

    >>> transfer_summary(1.0, 0.5, 0.95, 0.25, 0.9)["normalized_transfer"]
    0.3333333333333333
    >>> transfer_summary(1.0, 0.3, 0.5, 0.25, 0.9)["gap"] is None
    True
    """
    summary: dict[str, Any] = {
        "source_accuracy": source,
        "target_accuracy": target,
        "chance": chance,
        "alignment_accuracy": alignment,
        "gap": None,
        "normalized_transfer": None,
        "gap_withheld": None,
    }
    if alignment < threshold:
        summary["gap_withheld"] = (
            f"image → name alignment {alignment:.3f} is below {threshold}: the target "
            "accuracy would measure the binding, not the transfer"
        )
        return summary
    summary["gap"] = source - target
    if source > chance:
        summary["normalized_transfer"] = (target - chance) / (source - chance)
    return summary


def _report(spec: CrossModalSpec, data: CrossModalData, trained: Trained) -> dict[str, Any]:
    outcome = trained.outcome
    final = outcome.final_eval
    chance = 1.0 / spec.values_per_attribute
    result: dict[str, Any] = {
        "personas": spec.personas,
        "bridge_personas": spec.bridge_personas,
        "aligned_personas": round(spec.aligned_fraction * spec.bridge_personas),
        "n_parameters": trained.n_parameters,
        "vocab_size": data.vocab.n_words,
        "images": int(data.bank.shape[0]),
        "train_items": len(data.train.questions),
        "held_out_items": len(data.held_out.questions),
        "dataset_digest": data.digest(),
        "train_accuracy": final.get("eval/train_accuracy"),
    }
    gaps, transfers, alignments = [], [], []
    for direction in DIRECTIONS:
        prefix = f"eval/{direction}"
        alignment = final[f"{prefix}/alignment_accuracy"]
        summary = transfer_summary(
            final[f"{prefix}/source_accuracy"],
            final[f"{prefix}/target_accuracy"],
            alignment,
            chance,
            spec.alignment_threshold,
        )
        if spec.multi_hop:
            hop_source = final.get(f"{prefix}/multi_hop_source_accuracy")
            hop_target = final.get(f"{prefix}/multi_hop_target_accuracy")
            gated = summary["gap"] is not None and hop_source is not None
            summary["multi_hop"] = {
                "source_accuracy": hop_source,
                "target_accuracy": hop_target,
                "gap": hop_source - hop_target if gated and hop_target is not None else None,
            }
        result[direction] = summary
        alignments.append(alignment)
        gaps.append(summary["gap"])
        transfers.append(summary["normalized_transfer"])
    result["alignment_accuracy"] = sum(alignments) / len(alignments)
    result["gap"] = None if None in gaps else sum(gaps) / len(gaps)
    result["normalized_transfer"] = None if None in transfers else sum(transfers) / len(transfers)
    result["eval_history"] = [{"step": step, **m} for step, m in outcome.eval_history]
    result["device"] = str(trained.device)
    result["training"] = outcome.as_dict()
    return result
