"""kg_memorization: the graph, its triplets and walks, uploads, and a run that memorizes."""

import json
import random
from collections import Counter

import pytest
import torch
from pydantic import ValidationError

from core.catalog import parse_spec
from core.data.knowledge_graph import (
    IS_A,
    KnowledgeGraph,
    TokenVocab,
    Triplet,
    TripletFileError,
    WalkSampler,
    generate_graph,
    generated_graph_bound,
    parse_triplets,
    triplet_examples,
    walk_examples,
    walk_triplets,
)
from core.experiments.kg_memorization import build_dataset, build_model, run, sequence_length
from core.reporter import InMemoryReporter
from core.training.trainer import IGNORE_INDEX

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def graph(seed: int = 0, n_concepts: int = 300) -> KnowledgeGraph:
    return generate_graph(n_concepts, 1.0, 1.0, random.Random(seed))


def test_the_same_seed_draws_the_same_graph_and_another_seed_another() -> None:
    assert graph(3).triplets == graph(3).triplets
    assert graph(3).triplets != graph(4).triplets


def test_is_a_forms_a_hierarchy_each_concept_with_one_parent_and_no_cycle() -> None:
    parents = {t.head: t.tail for t in graph().triplets if t.relation == IS_A}
    assert len(parents) == sum(t.relation == IS_A for t in graph().triplets)  # one parent each
    roots = {"clinical finding", "body structure", "morphologic abnormality", "organism"}
    for concept in parents:
        seen = {concept}
        while concept in parents:  # climbing is-a always ends at a root
            concept = parents[concept]
            assert concept not in seen
            seen.add(concept)
        assert concept in roots


def test_head_and_relation_determine_the_tail() -> None:
    keys = [(t.head, t.relation) for t in graph().triplets]
    assert len(keys) == len(set(keys))
    assert {t.relation for t in graph().triplets} == {
        IS_A,
        "finding_site",
        "associated_morphology",
        "causative_agent",
        "due_to",
    }


def test_degrees_are_skewed_a_few_concepts_receive_most_edges() -> None:
    g = graph(n_concepts=1000)
    in_degree = sorted(Counter(t.tail for t in g.triplets).values(), reverse=True)
    top = len(g.concepts()) // 20
    assert sum(in_degree[:top]) > 0.3 * len(g.triplets)  # top 5% of concepts: > 30% of edges
    assert in_degree[0] > 10 * sorted(in_degree)[len(in_degree) // 2]  # max ≫ median


def test_triplets_are_scored_on_the_tail_only() -> None:
    g = graph()
    vocab = TokenVocab.from_graph(g)
    inputs, targets = triplet_examples(g.triplets[:5], vocab)
    assert inputs.shape == targets.shape == (5, 2)
    assert bool((targets[:, 0] == IGNORE_INDEX).all())
    for row, (head, relation, tail) in enumerate(g.triplets[:5]):
        assert [vocab.string(int(i)) for i in inputs[row]] == [head, relation]
        assert vocab.string(int(targets[row, 1])) == tail


def test_walks_follow_edges_reuse_no_node_relation_pair_and_stay_in_length() -> None:
    g = graph()
    edges = {(t.head, t.relation): t.tail for t in g.triplets}
    walks = WalkSampler(g).sample(300, random.Random(0))
    assert len(walks) == len(set(walks)) == 300
    for walk in walks:
        taken = walk_triplets(walk)
        assert 3 <= len(taken) <= 5
        assert all(edges[(h, r)] == t for h, r, t in taken)  # the next node is determined
        pairs = [(h, r) for h, r, _ in taken]
        assert len(pairs) == len(set(pairs))
    assert walks == WalkSampler(g).sample(300, random.Random(0))


def test_walks_are_scored_only_where_the_next_token_is_a_node() -> None:
    walk = ("A", "r", "B", "s", "C", "r", "D")
    vocab = TokenVocab(("r", "s", "A", "B", "C", "D"))
    inputs, targets = walk_examples([walk], vocab, max_edges=5)
    assert inputs.shape == targets.shape == (1, 10)
    assert [vocab.string(int(i)) for i in inputs[0]] == [*walk[:-1], *["<pad>"] * 4]
    expected = [IGNORE_INDEX, "B", IGNORE_INDEX, "C", IGNORE_INDEX, "D", *[IGNORE_INDEX] * 4]
    assert targets[0].tolist() == [e if e == IGNORE_INDEX else vocab.ids([e])[0] for e in expected]


def test_held_out_walks_take_a_held_out_edge_and_training_walks_never_do() -> None:
    spec = parse_spec({"kind": "kg_memorization", "data": "walks", "graph": {"n_concepts": 200}})
    data = build_dataset(spec)  # type: ignore[arg-type]
    held_edges = {e for w in data.held_out_items for e in walk_triplets(w)}
    train_edges = {e for w in data.train_items for e in walk_triplets(w)}
    assert data.held_out_items and not set(data.held_out_items) & set(data.train_items)
    for walk in data.held_out_items:
        assert set(walk_triplets(walk)) - train_edges, "each held-out walk has an unseen edge"
    assert train_edges and held_edges


def test_a_tsv_file_parses_skipping_a_header_blank_lines_and_exact_repeats() -> None:
    content = "head\trelation\ttail\nAsthma\tfinding_site\tlung \n\nAsthma\tfinding_site\tlung\n"
    assert parse_triplets(content, "tsv").triplets == (Triplet("Asthma", "finding_site", "lung"),)


@pytest.mark.parametrize(
    ("fmt", "content", "message"),
    [
        ("tsv", "a\tr\tb\na\tr\n", r"line 2: expected 3 tab-separated fields .* found 2"),
        ("tsv", "a\tr\tb\nc\t\td\n", "line 2: the relation field is empty"),
        ("tsv", "a\tr\tb\r\n\r\nc\td\r\n", "line 3: expected 3 tab-separated fields"),
        ("tsv", "a\tr\tb\n\na\tr\tc\n", "line 3: .* already has tail 'b' on line 1"),
        ("jsonl", '{"head": "a", "relation": "r", "tail": "b"}\n{"head": "a",\n', "line 2: not"),
        ("jsonl", '{"head": "a", "relation": "r"}\n', "line 1: missing key 'tail'"),
        ("jsonl", '["a", "r", "b"]\n', "line 1: expected a JSON object"),
        ("jsonl", '{"head": "a", "relation": "r", "tail": 3}\n', "line 1: 'tail' must be a str"),
        ("jsonl", '{"head": "a", "relation": "r", "tail": "b", "w": 1}\n', "line 1: unexpected"),
        ("tsv", "\n\n", "holds no triplets"),
    ],
)
def test_a_malformed_upload_is_refused_naming_the_line(fmt: str, content: str, message: str):
    with pytest.raises(TripletFileError, match=message):
        parse_triplets(content, fmt)  # type: ignore[arg-type]


def test_a_bad_upload_in_a_spec_is_a_validation_error_at_the_triplets_field() -> None:
    with pytest.raises(ValidationError, match="line 2: the tail field is empty") as caught:
        parse_spec(
            {"kind": "kg_memorization", "triplets": {"format": "tsv", "content": "a\tr\tb\nc\td\t"}}
        )
    assert caught.value.errors()[0]["loc"] == ("triplets",)
    with pytest.raises(ValidationError, match="at most 2000000"):
        parse_spec(
            {"kind": "kg_memorization", "triplets": {"format": "tsv", "content": "x" * 2_000_001}}
        )


def test_dataset_and_model_rebuild_identically_from_the_spec() -> None:
    spec = parse_spec({"kind": "kg_memorization", "graph": {"n_concepts": 100}, "seed": 5})
    first, again = build_dataset(spec), build_dataset(spec)  # type: ignore[arg-type]
    assert first.digest() == again.digest()
    total = len(first.train_items) + len(first.held_out_items)
    assert len(first.held_out_items) == round(0.1 * total)
    assert not set(first.held_out_items) & set(first.train_items)
    one = build_model(spec, first.vocab.size, sequence_length(spec))  # type: ignore[arg-type]
    two = build_model(spec, first.vocab.size, sequence_length(spec))  # type: ignore[arg-type]
    assert all(torch.equal(a, b) for a, b in zip(one.parameters(), two.parameters(), strict=True))


TINY_UPLOAD = "".join(
    json.dumps({"head": f"C{i}", "relation": r, "tail": f"C{(i * 7 + k) % 30}"}) + "\n"
    for i in range(30)
    for k, r in enumerate(["finding_site", "is_a"])
)


def tiny_spec(**extra: object) -> dict:
    return {
        "kind": "kg_memorization",
        "seed": 1,
        "triplets": {"format": "jsonl", "content": TINY_UPLOAD},
        "model": {"width": 32, "mixer": {"type": "attention", "n_head": 1}},
        "train": {"steps": 100, "lr": 1e-2, "min_lr": 1e-2, "eval_every": 25, "device": "cpu"},
        **extra,
    }


def test_a_tiny_uploaded_graph_is_memorized_and_the_same_spec_gives_the_same_numbers() -> None:
    spec = parse_spec(tiny_spec())
    reporter = InMemoryReporter()
    result = run(spec, reporter)  # type: ignore[arg-type]
    assert result["source"] == "upload" and result["train_items"] + result["held_out_items"] == 60
    assert result["train_accuracy"] >= 0.95
    assert result["items_memorized"] >= 0.95 * result["train_items"]
    assert result["steps_to_target"] is not None and result["epochs_to_target"] > 0
    model = build_model(spec, result["vocab_size"], 2)  # type: ignore[arg-type]
    assert result["n_parameters"] == model.num_parameters()
    assert len(reporter.artifacts["held_out.jsonl"].splitlines()) == result["held_out_items"]
    again = run(parse_spec(tiny_spec()), InMemoryReporter())  # type: ignore[arg-type]
    assert {k: v for k, v in again.items() if k != "training"} == {
        k: v for k, v in result.items() if k != "training"
    }
    assert again["training"]["final_train_loss"] == result["training"]["final_train_loss"]


def test_a_short_walk_run_reports_node_accuracy() -> None:
    spec = parse_spec(
        {
            "kind": "kg_memorization",
            "data": "walks",
            "graph": {"n_concepts": 60},
            "walks": {"count": 100},
            "model": {"width": 16, "n_layer": 2, "activation": "softmax"},
            "train": {"steps": 20, "eval_every": 10, "device": "cpu"},
        }
    )
    result = run(spec, InMemoryReporter())  # type: ignore[arg-type]
    assert result["data"] == "walks" and result["width"] == 8  # 16 split over 2 layers
    assert 0.0 <= result["train_accuracy"] <= 1.0 and result["train_items"] <= 100


@pytest.mark.parametrize("n_concepts", [8, 9, 400, 3001])
@pytest.mark.parametrize("density", [0.0, 1.0, 5.0])
def test_the_generated_graph_bound_holds_at_any_density(n_concepts: int, density: float) -> None:
    graph = generate_graph(n_concepts, density, 1.0, random.Random(n_concepts))
    concepts, triplets = generated_graph_bound(n_concepts)
    assert len(graph.concepts()) <= concepts
    assert len(graph.triplets) <= triplets
    if density == 5.0:  # every attribute is drawn: only due_to's self-loops are missing
        assert len(graph.triplets) > 0.9 * triplets


def test_the_estimate_bounds_the_vocabulary_of_a_dense_graph() -> None:
    spec = parse_spec({"kind": "kg_memorization", "graph": {"attribute_density": 5.0}})
    data = build_dataset(spec)
    vocab_bound, triplet_bound = spec._vocab_and_triplets()
    assert data.vocab.size <= vocab_bound
    assert len(data.train_items) <= spec.resource_estimate().dataset_items == triplet_bound
