"""Synthetic relational schemas and templated questions whose gold tables and columns are
known: the data of `schema_linking`, a CPU-sized stand-in for Spider.

A schema is 2–4 tables (by default) drawn from a fixed lexicon of entities; each table has
an `id`, a few attribute columns from a lexicon of attributes, and, with probability
`foreign_key_probability`, a foreign key `<other>_id` to an earlier table. A question
names its tables and columns through synonyms (an entity "singer" may be asked about as
"vocalist" or "artist"), so linking means mapping words to schema items rather than
copying them. Templates ask about one table, two tables joined by a key, or three joined
by a chain of keys; a join's gold columns include the key columns it goes through, as in
Spider. Training and held-out schemas come from the same generator (independent draws).

Example (seed 0):
    >>> import random
    >>> schema = generate_schema(random.Random(0), SchemaShape())
    >>> [table.name for table in schema.tables]
    ['hospital', 'airport', 'customer']
    >>> question = ask(schema, random.Random(1))
    >>> " ".join(question.words)
    'list the mass and length of each airfield'
    >>> question.gold_tables, question.gold_columns
    (('airport',), ('airport.weight', 'airport.duration'))
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

# Entity → synonyms a question may use (the name itself included). Every word is unique
# across entities and attributes, so a word names one concept.
ENTITIES: dict[str, tuple[str, ...]] = {
    "singer": ("singer", "vocalist", "artist"),
    "concert": ("concert", "performance", "gig"),
    "stadium": ("stadium", "arena", "venue"),
    "student": ("student", "pupil", "learner"),
    "course": ("course", "class", "module"),
    "teacher": ("teacher", "instructor", "tutor"),
    "employee": ("employee", "worker", "staffer"),
    "department": ("department", "division", "unit"),
    "product": ("product", "item", "good"),
    "customer": ("customer", "client", "buyer"),
    "city": ("city", "town", "municipality"),
    "country": ("country", "nation", "land"),
    "airport": ("airport", "airfield", "aerodrome"),
    "flight": ("flight", "trip", "journey"),
    "author": ("author", "writer", "novelist"),
    "book": ("book", "volume", "novel"),
    "movie": ("movie", "film", "picture"),
    "actor": ("actor", "performer", "star"),
    "doctor": ("doctor", "physician", "medic"),
    "hospital": ("hospital", "clinic", "infirmary"),
    "team": ("team", "club", "squad"),
    "player": ("player", "athlete", "sportsman"),
    "ship": ("ship", "vessel", "boat"),
    "museum": ("museum", "gallery", "exhibition"),
}
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "name": ("name", "title", "label"),
    "age": ("age", "years"),
    "year": ("year", "season"),
    "capacity": ("capacity", "size"),
    "price": ("price", "cost"),
    "salary": ("salary", "pay", "wage"),
    "budget": ("budget", "funding"),
    "rating": ("rating", "score", "grade"),
    "address": ("address", "location"),
    "email": ("email", "mail"),
    "phone": ("phone", "telephone"),
    "height": ("height", "tallness"),
    "weight": ("weight", "mass"),
    "date": ("date", "day"),
    "duration": ("duration", "length"),
    "population": ("population", "inhabitants"),
    "color": ("color", "colour", "hue"),
    "status": ("status", "condition"),
    "rank": ("rank", "standing"),
    "revenue": ("revenue", "income", "earnings"),
}
KEY_COLUMN = "id"
KEY_SUFFIX = "_id"
# Words of the question templates.
TEMPLATE_WORDS = (
    "list", "show", "give", "me", "find", "the", "of", "each", "every", "and", "with",
    "its", "how", "many", "are", "there", "for", "sorted", "by",
)  # fmt: skip
VERBS = (("list",), ("show",), ("give", "me"), ("find",))


@dataclass(frozen=True)
class SchemaShape:
    """How large the generated schemas are."""

    min_tables: int = 2
    max_tables: int = 4
    min_attributes: int = 2  # attribute columns per table, besides id and foreign keys
    max_attributes: int = 3
    foreign_key_probability: float = 0.8

    @property
    def max_columns(self) -> int:
        """Most columns one table can have: id, attributes and one foreign key."""
        return 2 + self.max_attributes

    @property
    def max_items(self) -> int:
        """Most tables plus columns in one schema (a bound on the slots a prompt needs)."""
        return self.max_tables * (1 + self.max_columns)


@dataclass(frozen=True)
class Table:
    name: str
    attributes: tuple[str, ...]
    references: tuple[str, ...]  # tables this one has a foreign key to, `<name>_id`

    @property
    def columns(self) -> tuple[str, ...]:
        """Column names in schema order: id, attributes, foreign keys."""
        keys = tuple(f"{other}{KEY_SUFFIX}" for other in self.references)
        return (KEY_COLUMN, *self.attributes, *keys)


@dataclass(frozen=True)
class Schema:
    tables: tuple[Table, ...]

    def table(self, name: str) -> Table:
        return next(table for table in self.tables if table.name == name)

    def items(self) -> tuple[str, ...]:
        """Every table and `table.column`, in listing order (each table, then its columns)."""
        return tuple(
            name
            for table in self.tables
            for name in (table.name, *(f"{table.name}.{c}" for c in table.columns))
        )


@dataclass(frozen=True)
class Question:
    """A question over one schema, its words, and its gold tables and columns in schema
    order (`table.column`)."""

    schema: Schema
    words: tuple[str, ...]
    gold_tables: tuple[str, ...]
    gold_columns: tuple[str, ...]


def generate_schema(rng: random.Random, shape: SchemaShape) -> Schema:
    """One schema: distinct entities, their attributes, and keys to earlier tables."""
    names = rng.sample(sorted(ENTITIES), rng.randint(shape.min_tables, shape.max_tables))
    tables = []
    for index, name in enumerate(names):
        count = rng.randint(shape.min_attributes, shape.max_attributes)
        attributes = tuple(rng.sample(sorted(ATTRIBUTES), count))
        references: tuple[str, ...] = ()
        if index > 0 and rng.random() < shape.foreign_key_probability:
            references = (names[rng.randrange(index)],)
        tables.append(Table(name, attributes, references))
    return Schema(tuple(tables))


def _synonym(rng: random.Random, lexicon: dict[str, tuple[str, ...]], name: str) -> str:
    return rng.choice(lexicon[name])


def _ordered(schema: Schema, names: set[str]) -> tuple[str, ...]:
    return tuple(item for item in schema.items() if item in names)


# A template's draw: the question's words and its gold tables and columns (unordered).
Drawn = tuple[list[str], set[str], set[str]]


def _one_table(
    schema: Schema, rng: random.Random, count: int
) -> tuple[Table, list[str], str, list[str]]:
    """A table with at least `count` attributes, `count` of them, and the words naming them."""
    table = rng.choice([t for t in schema.tables if len(t.attributes) >= count])
    attributes = rng.sample(table.attributes, count)
    t_word = _synonym(rng, ENTITIES, table.name)
    return table, attributes, t_word, [_synonym(rng, ATTRIBUTES, a) for a in attributes]


def _one_column(schema: Schema, rng: random.Random, verb: tuple[str, ...]) -> Drawn:
    """`list the <attribute> of each <table>`."""
    table, attributes, t_word, a_words = _one_table(schema, rng, 1)
    words = [*verb, "the", a_words[0], "of", "each", t_word]
    return words, {table.name}, {f"{table.name}.{attributes[0]}"}


def _two_columns(schema: Schema, rng: random.Random, verb: tuple[str, ...]) -> Drawn:
    """`list the <attribute> and <attribute> of each <table>` (a table with two or more)."""
    table, attributes, t_word, a_words = _one_table(schema, rng, 2)
    words = [*verb, "the", a_words[0], "and", a_words[1], "of", "each", t_word]
    return words, {table.name}, {f"{table.name}.{a}" for a in attributes}


def _sorted(schema: Schema, rng: random.Random, verb: tuple[str, ...]) -> Drawn:
    """`list every <table> sorted by <attribute>`."""
    table, attributes, t_word, a_words = _one_table(schema, rng, 1)
    words = [*verb, "every", t_word, "sorted", "by", a_words[0]]
    return words, {table.name}, {f"{table.name}.{attributes[0]}"}


def _links(schema: Schema) -> list[tuple[str, str]]:
    """(source, target) for each foreign key `source.<target>_id`."""
    return [(t.name, other) for t in schema.tables for other in t.references]


def _chains(schema: Schema) -> list[tuple[str, str, str]]:
    """(first, middle, last) for each pair of keys first → middle → last."""
    links = _links(schema)
    return [(a, b, c) for a, b in links for b2, c in links if b2 == b]


def _join_keys(source: str, target: str) -> set[str]:
    """The columns a join of `source` to `target` goes through: its key and the target's id."""
    return {f"{source}.{target}{KEY_SUFFIX}", f"{target}.{KEY_COLUMN}"}


def _join(schema: Schema, rng: random.Random, verb: tuple[str, ...]) -> Drawn:
    """`list the <attribute> of each <source> with the <attribute> of its <target>`."""
    source, target = rng.choice(_links(schema))
    target_attribute = rng.choice(schema.table(target).attributes)
    s_word, t_word = _synonym(rng, ENTITIES, source), _synonym(rng, ENTITIES, target)
    ta_word = _synonym(rng, ATTRIBUTES, target_attribute)
    source_attribute = rng.choice(schema.table(source).attributes)
    sa_word = _synonym(rng, ATTRIBUTES, source_attribute)
    words = [*verb, "the", sa_word, "of", "each", s_word, "with", "the", ta_word]
    words += ["of", "its", t_word]
    columns = {f"{source}.{source_attribute}", f"{target}.{target_attribute}"}
    return words, {source, target}, _join_keys(source, target) | columns


def _count_join(schema: Schema, rng: random.Random, verb: tuple[str, ...]) -> Drawn:
    """`how many <source> are there for each <target> <attribute>` (no verb)."""
    source, target = rng.choice(_links(schema))
    target_attribute = rng.choice(schema.table(target).attributes)
    s_word, t_word = _synonym(rng, ENTITIES, source), _synonym(rng, ENTITIES, target)
    ta_word = _synonym(rng, ATTRIBUTES, target_attribute)
    words = ["how", "many", s_word, "are", "there", "for", "each", t_word, ta_word]
    columns = {f"{target}.{target_attribute}"}
    return words, {source, target}, _join_keys(source, target) | columns


def _chain(schema: Schema, rng: random.Random, verb: tuple[str, ...]) -> Drawn:
    """`list the <attribute> of each <first> with the <attribute> of the <last> of its
    <middle>`: three tables joined through two keys."""
    first, middle, last = rng.choice(_chains(schema))
    first_attribute = rng.choice(schema.table(first).attributes)
    last_attribute = rng.choice(schema.table(last).attributes)
    words = [*verb, "the", _synonym(rng, ATTRIBUTES, first_attribute), "of", "each"]
    words += [_synonym(rng, ENTITIES, first), "with", "the"]
    words += [_synonym(rng, ATTRIBUTES, last_attribute), "of", "the"]
    words += [_synonym(rng, ENTITIES, last), "of", "its", _synonym(rng, ENTITIES, middle)]
    columns = {f"{first}.{first_attribute}", f"{last}.{last_attribute}"}
    columns |= _join_keys(first, middle) | _join_keys(middle, last)
    return words, {first, middle, last}, columns


Template = Callable[[Schema, random.Random, tuple[str, ...]], Drawn]


def templates_for(schema: Schema) -> dict[str, Template]:
    """The templates `schema` allows: two columns need a table with two attributes, joins
    a foreign key, a chain two keys in a row."""
    templates: dict[str, Template] = {"one_column": _one_column}
    if any(len(table.attributes) >= 2 for table in schema.tables):
        templates["two_columns"] = _two_columns
    templates["sorted"] = _sorted
    if _links(schema):
        templates |= {"join": _join, "count_join": _count_join}
    if _chains(schema):
        templates["chain"] = _chain
    return templates


def ask(schema: Schema, rng: random.Random) -> Question:
    """One templated question over `schema`, its template drawn uniformly among those the
    schema allows (`templates_for`)."""
    template = rng.choice(list(templates_for(schema).values()))
    words, tables, columns = template(schema, rng, rng.choice(VERBS))
    return Question(schema, tuple(words), _ordered(schema, tables), _ordered(schema, columns))


def generate_questions(
    n_schemas: int, questions_per_schema: int, shape: SchemaShape, rng: random.Random
) -> list[Question]:
    """`questions_per_schema` questions on each of `n_schemas` fresh schemas."""
    questions = []
    for _ in range(n_schemas):
        schema = generate_schema(rng, shape)
        questions += [ask(schema, rng) for _ in range(questions_per_schema)]
    return questions


def lexicon_words() -> tuple[str, ...]:
    """Every word a schema listing or a question can hold, sorted, without duplicates."""
    words = {w for synonyms in ENTITIES.values() for w in synonyms}
    words |= {w for synonyms in ATTRIBUTES.values() for w in synonyms}
    words |= {KEY_COLUMN, *TEMPLATE_WORDS}
    return tuple(sorted(words))
