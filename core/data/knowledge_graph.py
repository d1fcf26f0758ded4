"""Knowledge-graph memorization data: a synthetic clinical-style graph, triplets and walks.

"Capacity Matters" trained decoders on SNOMED CT; SNOMED needs a licence, so memlab
generates a graph with the same shape from a seed (or reads a triplet file a user
uploads). Every distinct string (concept or relation name) is one token.

The generated graph has four semantic types, each with its own is-a tree under a root
concept (clinical finding, body structure, morphologic abnormality, organism). A new
concept picks its is-a parent among the earlier concepts of its type with probability
∝ (children + 1), so a few concepts gather most children (preferential attachment).
Disorders (the clinical findings) then get attribute edges: finding_site → a body
structure, associated_morphology → a morphology, causative_agent → an organism, due_to →
another disorder; a tail is drawn with Zipf weights (rank + 1)^(−α) over a shuffled
ranking of its type, so tail in-degrees follow a power law. Every concept has at most
one edge per relation, so [head, relation] determines the tail.

Two datasets come out of a graph:
  - triplets: input [head, relation], target the tail (scored at position 1 only);
  - walks: a random walk of 3–5 edges inside the start node's 4-hop neighbourhood,
    written n0 r1 n1 r2 n2 …, never taking the same (node, relation) twice; scored only
    where the next token is a node (the relation taken is a free choice, the node it
    leads to is determined by the graph).
Example (triplets; names as drawn for 400 concepts from seed 0): (Runarcoremia,
finding_site, torsenal duct) becomes the input ids of [Runarcoremia, finding_site] with
targets [IGNORE, torsenal duct].
Example (a walk of 3 edges from that graph): Narnarmae syndrome, finding_site, belvaic
gland, is_a, quikaic nerve, is_a, structure of corzetnaral bone — seven tokens n0 r1 n1 r2
n2 r3 n3 — becomes inputs `n0 r1 n1 r2 n2 r3` (padded to 2 · max_edges) and targets
`IGNORE n1 IGNORE n2 IGNORE n3` (IGNORE over the padding too).

An uploaded triplet file is TSV (`head<TAB>relation<TAB>tail`, an optional header line
`head<TAB>relation<TAB>tail`) or JSONL (`{"head": …, "relation": …, "tail": …}`). Fields
are stripped of surrounding whitespace; blank lines are skipped; an exact repeat of a
triplet counts once; two different tails for one (head, relation) are refused, since
the target of [head, relation] must be determined. Every error names its line.
"""

from __future__ import annotations

import json
import random
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import torch

from core.training.trainer import IGNORE_INDEX

PAD_ID = 0  # token id of padding; no string maps to it

TripletFormat = Literal["tsv", "jsonl"]


class Triplet(NamedTuple):
    head: str
    relation: str
    tail: str


class TripletFileError(ValueError):
    """An uploaded triplet file is malformed; the message names the line and the problem."""


class ConflictingTripletError(ValueError):
    """Two triplets give different tails for one (head, relation)."""


@dataclass(frozen=True)
class KnowledgeGraph:
    """A set of directed, labelled edges in which (head, relation) determines the tail."""

    triplets: tuple[Triplet, ...]
    _out_edges: dict[str, tuple[tuple[str, str], ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        seen: dict[tuple[str, str], str] = {}
        edges: dict[str, list[tuple[str, str]]] = {}
        for head, relation, tail in self.triplets:
            known = seen.setdefault((head, relation), tail)
            if known != tail:
                raise ConflictingTripletError(
                    f"({head!r}, {relation!r}) has two tails: {known!r} and {tail!r}"
                )
            edges.setdefault(head, []).append((relation, tail))
        object.__setattr__(self, "_out_edges", {h: tuple(e) for h, e in edges.items()})

    def concepts(self) -> list[str]:
        """Every head and tail, sorted."""
        return sorted({t.head for t in self.triplets} | {t.tail for t in self.triplets})

    def relations(self) -> list[str]:
        return sorted({t.relation for t in self.triplets})

    def out_edges(self, concept: str) -> tuple[tuple[str, str], ...]:
        """(relation, tail) pairs leaving `concept`, in triplet order."""
        return self._out_edges.get(concept, ())

    def without(self, removed: Iterable[Triplet]) -> KnowledgeGraph:
        """The same graph less the `removed` triplets."""
        drop = set(removed)
        return KnowledgeGraph(tuple(t for t in self.triplets if t not in drop))


@dataclass(frozen=True)
class TokenVocab:
    """One token per distinct string: relations first, then concepts, each sorted; id 0 pads."""

    strings: tuple[str, ...]

    @classmethod
    def from_graph(cls, graph: KnowledgeGraph) -> TokenVocab:
        ordered = dict.fromkeys([*graph.relations(), *graph.concepts()])
        return cls(tuple(ordered))

    @property
    def size(self) -> int:
        return len(self.strings) + 1  # + padding

    def ids(self, strings: Sequence[str]) -> list[int]:
        index = self._index()
        return [index[s] for s in strings]

    def string(self, token_id: int) -> str:
        return "<pad>" if token_id == PAD_ID else self.strings[token_id - 1]

    def _index(self) -> dict[str, int]:
        cached: dict[str, int] | None = self.__dict__.get("_cache")
        if cached is None:
            cached = {s: i + 1 for i, s in enumerate(self.strings)}
            object.__setattr__(self, "_cache", cached)
        return cached


# --- the synthetic clinical-style graph -------------------------------------------------

_SYLLABLES = (
    "va", "lor", "dre", "mi", "ka", "sen", "tor", "bel", "qui", "nar", "os", "fen",
    "ru", "pal", "zet", "cor", "lin", "mae", "thu", "gra", "vel", "ori", "sab", "hex",
)  # fmt: skip
# Per semantic type: root concept, share of the concepts, name patterns ({} = a stem).
_TYPES: dict[str, tuple[str, float, tuple[str, ...]]] = {
    "disorder": (
        "clinical finding",
        0.5,
        ("{}itis", "{}osis", "{}emia", "{}opathy", "{}algia", "{} syndrome", "{} disease"),
    ),
    "body_structure": (
        "body structure",
        0.2,
        ("structure of {}al bone", "{}ic gland", "{}ar lobe", "{}al duct", "{}ic nerve"),
    ),
    "morphology": (
        "morphologic abnormality",
        0.15,
        ("{}ic necrosis", "{}al lesion", "{}ous inflammation", "{}ic fibrosis", "{}al cyst"),
    ),
    "organism": ("organism", 0.15, ("{}bacter", "{}coccus", "{} virus", "{}myces")),
}
IS_A = "is_a"
# Attribute relations of disorders: (name, tail type, base probability per disorder).
ATTRIBUTES: tuple[tuple[str, str, float], ...] = (
    ("finding_site", "body_structure", 0.9),
    ("associated_morphology", "morphology", 0.7),
    ("causative_agent", "organism", 0.35),
    ("due_to", "disorder", 0.2),
)


def generated_graph_bound(n_concepts: int) -> tuple[int, int]:
    """(concepts, triplets) that `generate_graph` makes at most for `n_concepts`, whatever
    its density and seed: every type's concepts, an is-a per non-root concept, and every
    attribute relation on every non-root disorder."""
    per_type = {kind: max(1, round(share * n_concepts)) for kind, (_, share, _) in _TYPES.items()}
    concepts = sum(per_type.values())
    is_a = concepts - len(per_type)
    attributes = (per_type["disorder"] - 1) * len(ATTRIBUTES)
    return concepts, is_a + attributes


def _concept_names(kind: str, count: int, taken: set[str], rng: random.Random) -> list[str]:
    """`count` new names of semantic type `kind`, distinct from each other and from `taken`."""
    patterns = _TYPES[kind][2]
    names = []
    while len(names) < count:
        stem = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3)))
        name = rng.choice(patterns).format(stem)
        name = name[0].upper() + name[1:] if kind in ("disorder", "organism") else name
        if name in taken:
            name = f"{name} type {len(taken)}"  # a stem collision; still unique and readable
        taken.add(name)
        names.append(name)
    return names


def generate_graph(
    n_concepts: int, attribute_density: float, degree_exponent: float, rng: random.Random
) -> KnowledgeGraph:
    """A clinical-style graph of about `n_concepts` concepts (module docstring has the recipe).

    Args:
        n_concepts: concepts across the four types, roots included (at least 8).
        attribute_density: multiplies each attribute's base probability per disorder.
        degree_exponent: α of the Zipf weights of attribute tails (0 = uniform).
        rng: every random draw comes from here.
    """
    taken: set[str] = set()
    by_type: dict[str, list[str]] = {}
    triplets: list[Triplet] = []
    for kind, (root, share, _) in _TYPES.items():
        taken.add(root)
        members = [root, *_concept_names(kind, max(1, round(share * n_concepts)) - 1, taken, rng)]
        children = [0] * len(members)
        for index in range(1, len(members)):  # is-a: parent is an earlier concept of the type
            parent = rng.choices(range(index), weights=[c + 1 for c in children[:index]])[0]
            children[parent] += 1
            triplets.append(Triplet(members[index], IS_A, members[parent]))
        by_type[kind] = members
    zipf = {
        kind: _zipf_weights(len(members), degree_exponent, rng) for kind, members in by_type.items()
    }
    for disorder in by_type["disorder"][1:]:
        for relation, tail_type, base in ATTRIBUTES:
            if rng.random() >= min(1.0, attribute_density * base):
                continue
            candidates = by_type[tail_type]
            tail = rng.choices(candidates, weights=zipf[tail_type])[0]
            if tail != disorder:  # due_to never points at itself
                triplets.append(Triplet(disorder, relation, tail))
    return KnowledgeGraph(tuple(triplets))


def _zipf_weights(count: int, exponent: float, rng: random.Random) -> list[float]:
    """Weights (rank + 1)^(−exponent) over a random ranking of `count` items."""
    ranks = list(range(count))
    rng.shuffle(ranks)
    return [(rank + 1) ** -exponent for rank in ranks]


def split_held_out(
    triplets: Sequence[Triplet], fraction: float, rng: random.Random
) -> tuple[list[Triplet], list[Triplet]]:
    """(train, held_out): a random `fraction` of the triplets, never trained on, held out;
    at least one triplet always stays in train."""
    order = list(triplets)
    rng.shuffle(order)
    count = min(round(fraction * len(order)), len(order) - 1)
    return order[count:], order[:count]


# --- datasets ---------------------------------------------------------------------------


def triplet_examples(
    triplets: Sequence[Triplet], vocab: TokenVocab
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (N, 2) = [head, relation]; targets (N, 2) = [IGNORE, tail]."""
    inputs = torch.zeros((len(triplets), 2), dtype=torch.long)
    targets = torch.full_like(inputs, IGNORE_INDEX)
    for row, (head, relation, tail) in enumerate(triplets):
        inputs[row, 0], inputs[row, 1] = vocab.ids([head, relation])
        targets[row, 1] = vocab.ids([tail])[0]
    return inputs, targets


Walk = tuple[str, ...]  # n0, r1, n1, …, rk, nk


def random_walk(
    graph: KnowledgeGraph,
    start: str,
    max_edges: int,
    hops: int,
    rng: random.Random,
    neighbourhood: dict[str, int],
) -> Walk:
    """A walk from `start` of at most `max_edges` edges that stays within `hops` of `start`
    (distances in `neighbourhood`) and never takes one (node, relation) twice; it ends
    early where no edge qualifies."""
    walk: list[str] = [start]
    used: set[tuple[str, str]] = set()
    node = start
    for _ in range(max_edges):
        options = [
            (relation, tail)
            for relation, tail in graph.out_edges(node)
            if (node, relation) not in used and neighbourhood.get(tail, hops + 1) <= hops
        ]
        if not options:
            break
        relation, tail = rng.choice(options)
        used.add((node, relation))
        walk += [relation, tail]
        node = tail
    return tuple(walk)


def undirected_adjacency(graph: KnowledgeGraph) -> dict[str, list[str]]:
    """Each concept → its neighbours along edges of either direction, sorted."""
    neighbours: dict[str, set[str]] = {}
    for head, _, tail in graph.triplets:
        neighbours.setdefault(head, set()).add(tail)
        neighbours.setdefault(tail, set()).add(head)
    return {concept: sorted(others) for concept, others in neighbours.items()}


def neighbourhood(undirected: dict[str, list[str]], start: str, hops: int) -> dict[str, int]:
    """Concepts within `hops` edges of `start` (from `undirected_adjacency`) → distance."""
    distance = {start: 0}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if distance[node] == hops:
            continue
        for other in undirected.get(node, ()):
            if other not in distance:
                distance[other] = distance[node] + 1
                queue.append(other)
    return distance


@dataclass
class WalkSampler:
    """Draws distinct random walks of `min_edges`–`max_edges` edges from one graph."""

    graph: KnowledgeGraph
    min_edges: int = 3
    max_edges: int = 5
    hops: int = 4
    _undirected: dict[str, list[str]] = field(init=False, repr=False)
    _neighbourhoods: dict[str, dict[str, int]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._undirected = undirected_adjacency(self.graph)

    def sample(
        self,
        count: int,
        rng: random.Random,
        keep: Iterable[Triplet] | None = None,
        exclude: Iterable[Walk] = (),
    ) -> list[Walk]:
        """Up to `count` distinct walks (fewer if the graph has too few), in draw order.

        With `keep`, only walks that take at least one of those edges count; walks in
        `exclude` never come back.
        """
        wanted = set(keep) if keep is not None else None
        starts = [c for c in self.graph.concepts() if self.graph.out_edges(c)]
        seen = set(exclude)
        walks: list[Walk] = []
        for _ in range(50 * count):  # rejection sampling; a small graph may run dry
            if len(walks) == count or not starts:
                break
            start = rng.choice(starts)
            length = rng.randint(self.min_edges, self.max_edges)
            walk = random_walk(self.graph, start, length, self.hops, rng, self._near(start))
            if (len(walk) - 1) // 2 < self.min_edges or walk in seen:
                continue
            if wanted is not None and not wanted & set(walk_triplets(walk)):
                continue
            seen.add(walk)
            walks.append(walk)
        return walks

    def _near(self, start: str) -> dict[str, int]:
        if start not in self._neighbourhoods:
            self._neighbourhoods[start] = neighbourhood(self._undirected, start, self.hops)
        return self._neighbourhoods[start]


def walk_triplets(walk: Walk) -> list[Triplet]:
    """The edges a walk takes, in order."""
    return [Triplet(walk[i], walk[i + 1], walk[i + 2]) for i in range(0, len(walk) - 2, 2)]


def walk_examples(
    walks: Sequence[Walk], vocab: TokenVocab, max_edges: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (N, 2·max_edges) = the walk less its last node, padded; targets (N, 2·max_edges)
    = the next token where that token is a node, IGNORE elsewhere (relations and padding)."""
    length = 2 * max_edges
    inputs = torch.full((len(walks), length), PAD_ID, dtype=torch.long)
    targets = torch.full((len(walks), length), IGNORE_INDEX, dtype=torch.long)
    for row, walk in enumerate(walks):
        ids = torch.tensor(vocab.ids(walk), dtype=torch.long)
        inputs[row, : len(walk) - 1] = ids[:-1]
        # Position t (a relation, t odd) predicts the node at t + 1.
        targets[row, 1 : len(walk) - 1 : 2] = ids[2::2]
    return inputs, targets


# --- uploaded triplet files -------------------------------------------------------------

_HEADER = ("head", "relation", "tail")


def parse_triplets(content: str, fmt: TripletFormat) -> KnowledgeGraph:
    """The graph in an uploaded TSV or JSONL file; TripletFileError names the first bad line.

    >>> parse_triplets("Asthma\\tfinding_site\\tlung\\n", "tsv").triplets
    (Triplet(head='Asthma', relation='finding_site', tail='lung'),)
    """
    first_line: dict[tuple[str, str], tuple[str, int]] = {}
    triplets: list[Triplet] = []
    for number, line in enumerate(content.split("\n"), start=1):  # only \n ends a line
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        fields = _tsv_fields(line, number) if fmt == "tsv" else _jsonl_fields(line, number)
        if fmt == "tsv" and number == 1 and tuple(f.lower() for f in fields) == _HEADER:
            continue
        for name, value in zip(_HEADER, fields, strict=True):
            if not value:
                raise TripletFileError(f"line {number}: the {name} field is empty")
        triplet = Triplet(*fields)
        key = (triplet.head, triplet.relation)
        if key in first_line:
            tail, line_of_tail = first_line[key]
            if tail != triplet.tail:
                raise TripletFileError(
                    f"line {number}: ({triplet.head!r}, {triplet.relation!r}) already has "
                    f"tail {tail!r} on line {line_of_tail}, here {triplet.tail!r}; a head and "
                    "relation must determine one tail, so conflicting tails are refused"
                )
            continue  # an exact repeat counts once
        first_line[key] = (triplet.tail, number)
        triplets.append(triplet)
    if not triplets:
        raise TripletFileError("the triplet file holds no triplets")
    return KnowledgeGraph(tuple(triplets))


def _tsv_fields(line: str, number: int) -> tuple[str, str, str]:
    fields = [f.strip() for f in line.split("\t")]
    if len(fields) != 3:
        raise TripletFileError(
            f"line {number}: expected 3 tab-separated fields (head, relation, tail), "
            f"found {len(fields)}"
        )
    return fields[0], fields[1], fields[2]


def _jsonl_fields(line: str, number: int) -> tuple[str, str, str]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise TripletFileError(
            f"line {number}: not valid JSON ({error.msg}, column {error.colno})"
        ) from None
    if not isinstance(record, dict):
        raise TripletFileError(
            f"line {number}: expected a JSON object with keys head, relation, tail, "
            f"found {type(record).__name__}"
        )
    missing = [key for key in _HEADER if key not in record]
    if missing:
        raise TripletFileError(f"line {number}: missing key {', '.join(map(repr, missing))}")
    extra = sorted(set(record) - set(_HEADER))
    if extra:
        raise TripletFileError(f"line {number}: unexpected key {', '.join(map(repr, extra))}")
    values = []
    for key in _HEADER:
        if not isinstance(record[key], str):
            raise TripletFileError(
                f"line {number}: {key!r} must be a string, found {type(record[key]).__name__}"
            )
        values.append(record[key].strip())
    return values[0], values[1], values[2]
