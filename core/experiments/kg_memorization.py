"""`kg_memorization`: how model shape limits the facts a decoder can memorize from a graph.

Reproduces "Capacity Matters: a Proof-of-Concept for Transformer Memorization on
Real-World Data" (Changalidis & Härmä, L2M2 2025). The paper trained small decoders on
SNOMED CT; memlab trains them on a synthetic clinical-style knowledge graph built from
`graph_seed` (core/data/knowledge_graph.py) or on a triplet file the user uploads.
  - data "triplets": input [concept, relation] → the related concept;
  - data "walks": random walks of 3–5 edges, alternating node and relation tokens,
    scored only where the next token is a node.
Metrics: memorization accuracy on the whole training set, capacity (training items
recalled exactly: a triplet's tail, or every node of a walk), and learning speed (the
first evaluation at which training accuracy reaches `target_accuracy`, in steps and in
epochs = steps · batch / training items). A random `held_out_fraction` of the triplets
is never trained on (for walks: held-out walks each take at least one held-out edge);
it is kept for membership probes, and its accuracy shows that recall is memorization.

The paper's findings: embedding size drives learning speed and capacity; extra layers
(total width fixed, d = base / L) add little or hurt; a softmax over the FFN's hidden
units is the most stable activation. Its optimiser was Adam at lr 1e-3, batch 128; here
that is AdamW with no weight decay, a constant rate and no warmup or clipping. The
decoder is `SequenceModel` with learned positions and an untied linear head. Defaults
are CPU-sized: a graph of 400 concepts (816 triplets, 82 held out), one layer of width
64, 1,000 steps; it took 22 s on one thread of a busy 2-core VM, reached 90% training
accuracy at step 200 and ended with every training triplet recalled.

`build_dataset(spec)` and `build_model(spec, vocab_size, seq_len)` rebuild a run's data
and initial model from its spec alone, for probes that examine a finished run.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, PrivateAttr, model_validator

from core.built import Built, MembershipSplit
from core.data.knowledge_graph import (
    ATTRIBUTES,
    KnowledgeGraph,
    TokenVocab,
    Triplet,
    Walk,
    WalkSampler,
    generate_graph,
    generated_graph_bound,
    parse_triplets,
    split_held_out,
    triplet_examples,
    walk_examples,
)
from core.evaluation import argmax_recall
from core.models.sequence_model import SequenceModel, SequenceModelSpec, parameter_count
from core.prepared import Prepared
from core.probes.features import Feature
from core.probes.target import SequenceSet
from core.reference_data import ReferenceData, ReservesReferenceData, reference_data_field
from core.registry import register_kind
from core.reporter import Reporter
from core.shadows import SHADOW_INDEX_PATH, PoolSubset, pool_subset_field, train_on_pool_subset
from core.spec_model import SpecModel
from core.specs import TrainedSpec, TrainSpec, field_error
from core.training.fit import Trained, run_prepared
from core.training.samplers import ExampleSampler

MAX_UPLOAD_CHARS = 2_000_000


class NoWalksError(ValueError):
    """The graph has no walk as long as the spec asks for."""


class GraphSpec(SpecModel):
    """The synthetic graph; ignored when `triplets` holds an upload."""

    n_concepts: int = Field(400, ge=8, le=20_000, description="Concepts, the 4 roots included.")
    attribute_density: float = Field(
        1.0, ge=0, le=5, description="Scales each attribute relation's chance per disorder."
    )
    degree_exponent: float = Field(
        1.0, ge=0, le=4, description="Zipf exponent of attribute-tail popularity (0 = uniform)."
    )


class TripletUpload(SpecModel):
    """A user's triplet file inline: TSV `head<TAB>relation<TAB>tail` or JSONL objects."""

    format: Literal["tsv", "jsonl"]
    content: str = Field(max_length=MAX_UPLOAD_CHARS, description="The file's text.")

    # The parsed file, kept from validation so that the estimate, the run and the probe
    # target never parse a 2 MB upload again.
    _graph: KnowledgeGraph = PrivateAttr()

    @model_validator(mode="after")
    def _parses(self) -> TripletUpload:
        # A malformed file is a validation error naming the line.
        self._graph = parse_triplets(self.content, self.format)
        return self

    def graph(self) -> KnowledgeGraph:
        return self._graph


class WalkSpec(SpecModel):
    """Random-walk sequences (data "walks")."""

    count: int = Field(1000, ge=1, le=1_000_000, description="Distinct walks to draw.")
    min_edges: int = Field(3, ge=1, le=32)
    max_edges: int = Field(5, ge=1, le=32)
    hops: int = Field(4, ge=1, le=32, description="Walks stay within this many hops of start.")

    @model_validator(mode="after")
    def _ordered(self) -> WalkSpec:
        if self.min_edges > self.max_edges:
            raise ValueError(f"min_edges {self.min_edges} exceeds max_edges {self.max_edges}")
        return self


class KGMemorizationSpec(ReservesReferenceData, TrainedSpec):
    """One decoder shape on one graph; sweep width × depth × activation for the paper's plots."""

    kind: Literal["kg_memorization"] = "kg_memorization"
    data: Literal["triplets", "walks"] = "triplets"
    graph: GraphSpec = GraphSpec()
    graph_seed: int = Field(
        0, ge=0, le=2**31 - 1, description="Seeds the graph, held-out split and walks."
    )
    triplets: TripletUpload | None = Field(
        None, description="A user's triplet file; replaces the generated graph."
    )
    walks: WalkSpec = WalkSpec()
    held_out_fraction: float = Field(
        0.1, ge=0, lt=1, description="Share of triplets never trained on, kept for probes."
    )
    # The reserve: the triplets left after the held-out split are halved (seeded); the
    # target trains on one half, its reference on the other. The vocabulary is the graph's.
    reference_data: ReferenceData | None = reference_data_field()
    pool_subset: PoolSubset | None = pool_subset_field()
    target_accuracy: float = Field(
        0.9, gt=0, le=1, description="Training accuracy whose first crossing times learning."
    )
    model: SequenceModelSpec = SequenceModelSpec(
        n_layer=1,
        width=64,
        split_width_across_layers=True,
        mixer={"type": "attention", "n_head": 2},
        ffn_ratio=4.0,
        activation="gelu",
        positions="learned",
        tie_embeddings=False,
    )
    train: TrainSpec = TrainSpec(
        steps=1000,
        batch_size=128,
        lr=1e-3,
        min_lr=1e-3,
        schedule="constant",
        warmup_fraction=0.0,
        weight_decay=0.0,
        beta2=0.999,
        grad_clip=None,
        eval_every=50,
        checkpoint_every=1000,
    )

    # About 2 triplets per concept, 10% held out: about 300 non-members.
    membership_fields: ClassVar[dict[str, Any]] = {"graph": {"n_concepts": 1500}}

    added_fields: ClassVar[frozenset[str]] = frozenset({"reference_data", "pool_subset"})
    # Shadow models of one pool differ only in their row of the inclusion matrix.
    batch_fields: ClassVar[tuple[str, ...]] = (*TrainedSpec.batch_fields, SHADOW_INDEX_PATH)
    # What decides the graph, its split and its vocabulary (`reference_refusal`).
    data_fields: ClassVar[frozenset[str]] = frozenset(
        {"data", "graph", "graph_seed", "triplets", "walks", "held_out_fraction"}
    )

    smoke_fields: ClassVar[dict[str, Any]] = {
        "graph": {"n_concepts": 40},
        "model": {"width": 16},
        "train": {"steps": 6, "batch_size": 16, "eval_every": 3},
    }

    @model_validator(mode="after")
    def _a_shadow_needs_held_out_triplets(self) -> KGMemorizationSpec:
        if self.pool_subset is not None and self.held_out_fraction == 0:
            raise field_error(
                "pool_subset",
                "a shadow trains on half of its pool, the training and the held-out "
                "triplets; with held_out_fraction 0 none is held out: give it above 0",
            )
        return self

    def context_tokens(self) -> int:
        return sequence_length(self)

    def _vocab_and_triplets(self) -> tuple[int, int]:
        """(vocabulary size, triplets): exact for an upload (parsed once, at validation),
        an upper bound for a generated graph (from `n_concepts` alone)."""
        if self.triplets is not None:
            graph = self.triplets.graph()
            return len(graph.concepts()) + len(graph.relations()) + 1, len(graph.triplets)
        concepts, triplets = generated_graph_bound(self.graph.n_concepts)
        relations = 1 + len(ATTRIBUTES)  # is-a and the attribute relations
        return concepts + relations + 1, triplets  # + the padding token

    def parameter_count(self) -> int:
        vocab, _ = self._vocab_and_triplets()
        return parameter_count(self.model, vocab, sequence_length(self))

    def dataset_items(self) -> int:
        return self.walks.count if self.data == "walks" else self._vocab_and_triplets()[1]

    def probe_features(self) -> frozenset[Feature]:
        features = {Feature.held_out} if self.held_out_fraction > 0 else set()
        if self.reference_data == "reserve":
            features.add(Feature.disjoint_reference)
        if self.held_out_fraction > 0 and self.pool_subset is None:
            features.add(Feature.shadow_training)
        return frozenset(features)


def sequence_length(spec: KGMemorizationSpec) -> int:
    """Model context: 2 for triplets, 2 · max_edges for walks (the last node is only a target)."""
    return 2 if spec.data == "triplets" else 2 * spec.walks.max_edges


@dataclass(frozen=True)
class KGDataset:
    """A run's items as text and as tensors: train items are memorized, held-out never seen.

    Items are triplets (head, relation, tail) or walks (n0, r1, n1, …); inputs and
    targets are (N, T) with IGNORE_INDEX where nothing is scored.
    """

    vocab: TokenVocab
    train_items: tuple[tuple[str, ...], ...]
    held_out_items: tuple[tuple[str, ...], ...]
    train_inputs: torch.Tensor
    train_targets: torch.Tensor
    held_out_inputs: torch.Tensor
    held_out_targets: torch.Tensor

    def digest(self) -> str:
        """SHA-256 of the items of both splits, to check that a rebuild found the same data."""
        data = {"train": self.train_items, "held_out": self.held_out_items}
        return hashlib.sha256(json.dumps(data, separators=(",", ":")).encode()).hexdigest()


def build_graph(spec: KGMemorizationSpec) -> KnowledgeGraph:
    """The uploaded graph, or the synthetic one of `spec.graph` drawn from `graph_seed`."""
    if spec.triplets is not None:
        return spec.triplets.graph()
    rng = random.Random(spec.graph_seed)
    return generate_graph(
        spec.graph.n_concepts, spec.graph.attribute_density, spec.graph.degree_exponent, rng
    )


def build_dataset(spec: KGMemorizationSpec) -> KGDataset:
    """The run's training and held-out items, a pure function of the spec (`graph_seed`)."""
    graph = build_graph(spec)
    vocab = TokenVocab.from_graph(graph)
    rng = random.Random(spec.graph_seed + 1)  # the split and walks, apart from the graph
    train, held_out = split_held_out(graph.triplets, spec.held_out_fraction, rng)
    if spec.reference_data is not None:
        # `train` is in shuffled order: its halves are a seeded random split.
        target_half, reserve = train[: len(train) // 2], train[len(train) // 2 :]
        train = reserve if spec.reference_data == "train_on" else target_half
    if spec.data == "triplets":
        train_items: list[tuple[str, ...]] = list(train)
        held_items: list[tuple[str, ...]] = list(held_out)
        train_x, train_y = triplet_examples(train, vocab)
        held_x, held_y = triplet_examples(held_out, vocab)
    else:
        train_walks, held_walks = _walk_split(spec, graph, train, held_out, rng)
        train_items, held_items = list(train_walks), list(held_walks)
        train_x, train_y = walk_examples(train_walks, vocab, spec.walks.max_edges)
        held_x, held_y = walk_examples(held_walks, vocab, spec.walks.max_edges)
    return KGDataset(vocab, tuple(train_items), tuple(held_items), train_x, train_y, held_x, held_y)


def _walk_split(
    spec: KGMemorizationSpec,
    graph: KnowledgeGraph,
    train: list[Triplet],
    held_out: list[Triplet],
    rng: random.Random,
) -> tuple[list[Walk], list[Walk]]:
    """Training walks on the training edges only; held-out walks on the whole graph, each
    taking at least one held-out edge (so no held-out walk was ever trained on)."""
    shape = {"min_edges": spec.walks.min_edges, "max_edges": spec.walks.max_edges}
    train_graph = KnowledgeGraph(tuple(train))
    train_walks = WalkSampler(train_graph, hops=spec.walks.hops, **shape).sample(
        spec.walks.count, rng
    )
    if not train_walks:
        raise NoWalksError(
            f"the graph has no walk of {spec.walks.min_edges} or more edges to train on; "
            "lower walks.min_edges or use data 'triplets'"
        )
    held_count = round(spec.held_out_fraction * spec.walks.count) if held_out else 0
    held_walks = WalkSampler(graph, hops=spec.walks.hops, **shape).sample(
        held_count, rng, keep=held_out
    )
    return train_walks, held_walks


def build_model(spec: KGMemorizationSpec, vocab_size: int, seq_len: int) -> SequenceModel:
    """The run's decoder at initialisation; seeds torch's global RNG with `spec.seed`."""
    torch.manual_seed(spec.seed)
    return SequenceModel(spec.model, vocab_size, seq_len)


def assemble(spec: KGMemorizationSpec, data: KGDataset) -> Built:
    """The run's parts from its dataset. Members: the training triplets or walks, scored
    where the kind scores them (tails, next nodes); non-members: the held-out split of the
    same graph."""
    seq_len = sequence_length(spec)

    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        train = argmax_recall(model, data.train_inputs, data.train_targets, batch_size=1024)
        held = argmax_recall(model, data.held_out_inputs, data.held_out_targets, batch_size=1024)
        return {
            "eval/train_accuracy": train.accuracy,
            "eval/items_memorized": float(train.items_recalled),
            "eval/held_out_accuracy": held.accuracy,
        }

    members = _items(data.train_items, data.train_inputs, data.train_targets)
    held_out = (
        _items(data.held_out_items, data.held_out_inputs, data.held_out_targets)
        if data.held_out_items
        else None
    )
    built = Built(
        make_model=lambda: build_model(spec, data.vocab.size, seq_len),
        training_items=members,
        sample_batch=ExampleSampler(data.train_inputs, data.train_targets, spec.train.batch_size),
        evaluate=evaluate,
        membership=MembershipSplit(
            members=members,
            non_members=held_out,
            rule=f"members: every training {spec.data[:-1]}; non-members: the held-out "
            f"{spec.held_out_fraction:.0%} of the same graph's triplets"
            + (" and the walks through them" if spec.data == "walks" else ""),
        ),
        vocab_size=data.vocab.size,
        vocabulary="\n".join(data.vocab.strings),
        max_length=seq_len,
    )
    return train_on_pool_subset(built, spec.pool_subset, spec.train.batch_size)


def build(spec: KGMemorizationSpec) -> Built:
    return assemble(spec, build_dataset(spec))


def _items(
    items: tuple[tuple[str, ...], ...], inputs: torch.Tensor, targets: torch.Tensor
) -> SequenceSet:
    return SequenceSet(inputs, targets, tuple(" ".join(item) for item in items))


def prepare(spec: KGMemorizationSpec) -> Prepared:
    """The run's dataset and parts, and its report: memorization and speed."""
    data = build_dataset(spec)

    def report(trained: Trained, reporter: Reporter) -> dict[str, Any]:
        return _report(spec, data, trained, reporter)

    return Prepared(assemble(spec, data), report)


@register_kind(
    KGMemorizationSpec,
    "Knowledge-graph memorization (triplets or walks) vs width, depth and FFN activation.",
    build=build,
    prepare=prepare,
)
def run(spec: KGMemorizationSpec, reporter: Reporter) -> dict[str, Any]:
    """Train one decoder on the graph's training items; report memorization and speed."""
    return run_prepared(spec, prepare(spec), reporter)


def _report(
    spec: KGMemorizationSpec, data: KGDataset, trained: Trained, reporter: Reporter
) -> dict[str, Any]:
    outcome, device = trained.outcome, trained.device
    n_train = len(data.train_items)
    reached = next(
        (
            step
            for step, metrics in outcome.eval_history
            if metrics["eval/train_accuracy"] >= spec.target_accuracy
        ),
        None,
    )
    best = outcome.best_eval("eval/items_memorized")
    reporter.save_artifact(
        "held_out.jsonl",
        "".join(json.dumps(list(item)) + "\n" for item in data.held_out_items).encode(),
    )
    epoch_items = spec.train.batch_size / n_train
    return {
        "data": spec.data,
        "source": "upload" if spec.triplets else "synthetic",
        "width": spec.model.layer_width,
        "n_layer": spec.model.n_layer,
        "activation": spec.model.activation,
        "n_parameters": trained.n_parameters,
        "vocab_size": data.vocab.size,
        "train_items": n_train,
        "held_out_items": len(data.held_out_items),
        "dataset_digest": data.digest(),
        "train_accuracy": outcome.final_eval.get("eval/train_accuracy"),
        "items_memorized": int(outcome.final_eval.get("eval/items_memorized", 0)),
        "max_items_memorized": int(best[1]["eval/items_memorized"]) if best else None,
        "held_out_accuracy": outcome.final_eval.get("eval/held_out_accuracy"),
        "target_accuracy": spec.target_accuracy,
        "steps_to_target": reached,
        "epochs_to_target": round(reached * epoch_items, 2) if reached is not None else None,
        "epochs": round(outcome.steps * epoch_items, 2),
        "device": str(device),
        "training": outcome.as_dict(),
    }
