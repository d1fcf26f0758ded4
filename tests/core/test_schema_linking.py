"""`schema_linking`: its data, prompts, pointer policy, spec rules and two-stage run."""

from __future__ import annotations

import doctest
import random

import pytest
import torch
from pydantic import ValidationError

from core.catalog import get_kind
from core.data import schema_answers, schema_prompts, schemas
from core.data.schema_answers import answer_metrics, parse_answer
from core.data.schema_prompts import (
    PromptLayout,
    SchemaVocab,
    UnknownTokenError,
    answer_tokens,
    encode_questions,
    full_schema_answer_length,
    render,
)
from core.data.schemas import (
    Question,
    Schema,
    SchemaShape,
    Table,
    ask,
    generate_questions,
    generate_schema,
    templates_for,
)
from core.experiments.schema_linking import (
    HeldOutAnswers,
    SchemaLinkingSpec,
    _grpo_objective,
    build,
    build_dataset,
    evaluate_policy,
    grpo_prompt_sampler,
    supervised_examples,
)
from core.models.pointer_policy import UNSEEN_SLOT_LOGIT, PointerPolicy
from core.models.sequence_model import SequenceModel, SequenceModelSpec
from core.reporter import InMemoryReporter
from core.schema_evaluation import decode_answers
from core.spec_model import spec_hash
from core.training import grpo
from core.training.checkpoint import latest_checkpoint
from core.training.trainer import IGNORE_INDEX

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHAPE = SchemaShape()
# spec_hash of {"kind": "schema_linking"} by the code before `grpo.prompt_pool` existed.
STORED_HASH = "7074d813e93bd4b0d1c40ce0746a08813b97e847f8f08a4bd31616811e10e551"


def _keys_between(question: Question) -> set[tuple[str, str]]:
    """(source, target) for each foreign key joining two of the question's gold tables."""
    gold = set(question.gold_tables)
    return {
        (table.name, target)
        for table in question.schema.tables
        for target in table.references
        if table.name in gold and target in gold
    }


def test_gold_columns_lie_in_gold_tables_and_joins_go_through_their_key_columns() -> None:
    questions = generate_questions(150, 6, SHAPE, random.Random(0))
    sizes = {len(q.gold_tables) for q in questions}
    assert sizes == {1, 2, 3}  # single tables, joins (and counts) and chains all occur
    for question in questions:
        tables = set(question.gold_tables)
        assert {column.split(".")[0] for column in question.gold_columns} == tables
        keys = _keys_between(question)
        # The gold tables are connected: n tables need n − 1 keys between them.
        assert len(keys) >= len(tables) - 1
        if len(tables) > 1:
            joined = {f"{s}.{t}_id" for s, t in keys} | {f"{t}.id" for _, t in keys}
            assert joined <= set(question.gold_columns)
        attributes = [c for c in question.gold_columns if not c.endswith("id")]
        assert 1 <= len(attributes) <= 2


def test_a_table_with_one_attribute_is_never_asked_for_two() -> None:
    shape = SchemaShape(min_attributes=1, max_attributes=1)
    rng = random.Random(3)
    for _ in range(100):
        schema = generate_schema(rng, shape)
        assert "two_columns" not in templates_for(schema)
        ask(schema, rng)  # every allowed template can be drawn
    mixed = Schema((Table("singer", ("age",), ()), Table("concert", ("year", "name"), ())))
    rng = random.Random(4)
    two = [q for q in (ask(mixed, rng) for _ in range(200)) if len(q.gold_columns) == 2]
    assert two and all(q.gold_tables == ("concert",) for q in two)
    one_each = _smoke(min_attributes=1, max_attributes=1)
    assert len(build_dataset(one_each).train) == 6 * 4


def test_gold_items_are_schema_items_in_listing_order() -> None:
    for question in generate_questions(30, 4, SHAPE, random.Random(1)):
        items = question.schema.items()
        gold = [*question.gold_tables, *question.gold_columns]
        assert set(gold) <= set(items)
        assert list(question.gold_columns) == [c for c in items if c in question.gold_columns]


def test_the_gold_answer_in_slots_renders_to_the_gold_text() -> None:
    vocab = SchemaVocab.for_shape(SHAPE)
    questions = generate_questions(20, 3, SHAPE, random.Random(2))
    encoded = encode_questions(
        questions, vocab, PromptLayout.for_shape(SHAPE, 32), random.Random(3)
    )
    for row, question in enumerate(questions):
        text = render(encoded.answers[row].tolist(), encoded.slot_names[row], vocab)
        assert text == encoded.gold[row]
        assert parse_answer(text).columns == set(question.gold_columns)


def test_slot_numbers_are_drawn_afresh_for_each_prompt() -> None:
    vocab = SchemaVocab.for_shape(SHAPE)
    schema = generate_schema(random.Random(4), SHAPE)
    question = ask(schema, random.Random(5))
    encoded = encode_questions(
        [question, question], vocab, PromptLayout.for_shape(SHAPE, 32), random.Random(6)
    )
    assert encoded.slot_names[0] != encoded.slot_names[1]
    assert encoded.gold[0] == encoded.gold[1]


def test_supervised_targets_score_the_answer_only() -> None:
    spec = SchemaLinkingSpec.model_validate(
        SchemaLinkingSpec.smoke_fields | {"kind": "schema_linking"}
    )
    data = build_dataset(spec)
    inputs, targets = supervised_examples(data.train, data.vocab)
    prompt_length = data.layout.prompt_length
    assert inputs.shape == (len(data.train), data.layout.context)
    assert (targets[:, : prompt_length - 1] == IGNORE_INDEX).all()
    scored = (targets != IGNORE_INDEX).sum(dim=1)
    answer_tokens = (data.train.answers != data.vocab.id("<pad>")).sum(dim=1)
    assert torch.equal(scored, answer_tokens)


def _policy(vocab: SchemaVocab, length: int) -> PointerPolicy:
    torch.manual_seed(0)
    return PointerPolicy(
        SequenceModelSpec(n_layer=1, width=16), vocab.size, length, vocab.n_slots
    ).eval()


def test_a_slot_cannot_be_pointed_at_before_it_occurs() -> None:
    vocab = SchemaVocab.for_shape(SHAPE)
    slot = vocab.slot_start + 3
    idx = torch.tensor([[vocab.id("<schema>"), vocab.id("singer"), slot, vocab.id("<answer>")]])
    logits = _policy(vocab, 4)(idx)
    assert logits.shape == (1, 4, vocab.size)
    assert (logits[0, :2, slot] == UNSEEN_SLOT_LOGIT).all()  # not yet listed
    assert (logits[0, 2:, slot] > UNSEEN_SLOT_LOGIT).all()
    assert (logits[0, :, vocab.slot_start] == UNSEEN_SLOT_LOGIT).all()  # never listed


def test_renumbering_the_slots_renumbers_the_pointer_logits_and_nothing_else() -> None:
    """A slot's logit depends on where it was listed, not on its number: the pointer has
    no weight of its own per slot (only the slot's token embedding, read at the listing)."""
    vocab = SchemaVocab.for_shape(SHAPE)
    model = _policy(vocab, 6)
    with torch.no_grad():
        model.trunk.tok_emb.weight[vocab.slot_start :] = model.trunk.tok_emb.weight[
            vocab.slot_start
        ]
    a, b = vocab.slot_start + 2, vocab.slot_start + 7
    words = [vocab.id("singer"), vocab.id("concert")]
    first = model(torch.tensor([[words[0], a, words[1], b, vocab.id("<answer>"), vocab.id(",")]]))
    second = model(torch.tensor([[words[0], b, words[1], a, vocab.id("<answer>"), vocab.id(",")]]))
    assert torch.allclose(first[0, 4:, a], second[0, 4:, b])
    assert torch.allclose(first[0, 4:, b], second[0, 4:, a])
    assert torch.allclose(first[0, :, : vocab.slot_start], second[0, :, : vocab.slot_start])


def _schemas_and_words(texts: tuple[str, ...]) -> tuple[set[str], set[str]]:
    """The schema listings (slot numbers dropped) and the question words of prompts."""
    schemas, words = set(), set()
    for text in texts:
        listing, rest = text.split("<question>")
        schemas.add(" ".join(w for w in listing.split() if not w.startswith("SLOT_")))
        words |= set(rest.split("<answer>")[0].split())
    return schemas, words


def test_held_out_questions_are_on_other_schemas_from_the_same_lexicon() -> None:
    spec = SchemaLinkingSpec.model_validate({"kind": "schema_linking"})
    data = build_dataset(spec)
    assert len(data.held_out) == spec.n_held_out_schemas * spec.questions_per_schema
    train_schemas, train_words = _schemas_and_words(data.train.texts)
    held_schemas, held_words = _schemas_and_words(data.held_out.texts)
    assert len(held_schemas) == spec.n_held_out_schemas
    assert not train_schemas & held_schemas  # no held-out schema was trained on
    # Same generator: held-out questions use no word training never showed.
    assert held_words <= train_words


def test_the_training_set_does_not_depend_on_the_held_out_split() -> None:
    spec = SchemaLinkingSpec.model_validate({"kind": "schema_linking", "n_train_schemas": 10})
    more = spec.model_copy(update={"n_held_out_schemas": 7})
    assert build_dataset(spec).train.texts == build_dataset(more).train.texts
    assert build_dataset(spec).held_out.texts != build_dataset(more).held_out.texts


def test_an_unknown_word_is_refused_with_its_name() -> None:
    with pytest.raises(UnknownTokenError, match="'zebra'"):
        SchemaVocab.for_shape(SHAPE).id("zebra")


def test_the_default_answer_budget_fits_an_answer_naming_every_item_of_the_largest_schema() -> None:
    spec = SchemaLinkingSpec.model_validate({"kind": "schema_linking"})
    shape = spec.shape()
    every = answer_tokens(["SLOT_0"] * shape.max_tables, ["SLOT_0"] * (shape.max_items - 4))
    assert spec.answer_tokens() == len(every) == full_schema_answer_length(shape) == 51
    assert spec.context_tokens() == spec.layout().prompt_length + len(every) - 1
    bigger = SchemaLinkingSpec.model_validate({"kind": "schema_linking", "max_tables": 6})
    assert bigger.answer_tokens() == full_schema_answer_length(bigger.shape()) > 51


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"min_tables": 5, "max_tables": 3}, "min_tables"),
        ({"min_attributes": 4, "max_attributes": 2}, "min_attributes"),
        ({"cold_start_examples": 10_000}, "cold_start_examples"),
        ({"max_answer_tokens": 10}, "max_answer_tokens"),
        ({"max_answer_tokens": 40}, "max_answer_tokens"),  # below the full schema's 51
        ({"grpo": {"train": {"device": "cpu"}}}, "grpo.train.device"),
        ({"grpo": {"accuracy_weight": 0, "format_weight": 0}}, "grpo.accuracy_weight"),
        ({"grpo": {"group_size": 1}}, "grpo.group_size"),
        ({"grpo": {"prompt_pool": 1201}}, "grpo.prompt_pool"),  # 150 schemas × 8 = 1,200
        ({"grpo": {"prompt_pool": 0}}, "grpo.prompt_pool"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_field(fields: dict, path: str) -> None:
    with pytest.raises(ValidationError) as error:
        SchemaLinkingSpec.model_validate({"kind": "schema_linking", **fields})
    assert path in {".".join(str(p) for p in e["loc"]) for e in error.value.errors()}


def test_the_estimate_counts_both_stages_steps_and_the_built_models_parameters() -> None:
    spec = SchemaLinkingSpec.model_validate({"kind": "schema_linking"})
    estimate = spec.resource_estimate()
    assert estimate.steps == spec.train.steps + spec.grpo.train.steps  # type: ignore[union-attr]
    assert estimate.batch_size == spec.grpo.train.batch_size * spec.grpo.group_size  # type: ignore[union-attr]
    model = build(spec).make_model()
    assert estimate.parameters == sum(p.numel() for p in model.parameters())
    sft_only = SchemaLinkingSpec.model_validate({"kind": "schema_linking", "grpo": None})
    assert sft_only.resource_estimate().steps == spec.train.steps


def _smoke(**fields: object) -> SchemaLinkingSpec:
    raw = {"kind": "schema_linking", **SchemaLinkingSpec.smoke_fields, **fields}
    return SchemaLinkingSpec.model_validate(raw)


def test_sft_checkpoints_in_a_subfolder_and_grpo_in_the_runs_folder(tmp_path) -> None:
    spec = _smoke()
    reporter = InMemoryReporter(directory=tmp_path)
    result = get_kind("schema_linking").run(spec, reporter)
    folder = reporter.checkpoint_dir()
    assert latest_checkpoint(folder / "sft").step == spec.train.steps  # type: ignore[union-attr]
    assert latest_checkpoint(folder).step == spec.grpo.train.steps  # type: ignore[union-attr]
    assert result["training"]["steps"] == spec.train.steps + spec.grpo.train.steps  # type: ignore[union-attr]
    assert set(result["gain"]["tables"]) == {
        "exact",
        "filter",
        "recall",
        "precision",
        "empty_rate",
        "mean_predicted",
    }
    # GRPO's metrics are logged after SFT's steps, at the run's global step.
    grpo_steps = sorted({step for step, key, _ in reporter.metrics if key.startswith("grpo/")})
    sft_steps = sorted({step for step, key, _ in reporter.metrics if key.startswith("sft/")})
    assert sft_steps[-1] == spec.train.steps
    assert grpo_steps[0] > spec.train.steps and grpo_steps[-1] == result["training"]["steps"]
    assert [step for step, _ in reporter.checkpoints] == [spec.grpo.train.steps]  # type: ignore[union-attr]


def test_without_grpo_the_sft_policy_is_the_runs_checkpoint(tmp_path) -> None:
    spec = _smoke(grpo=None)
    reporter = InMemoryReporter(directory=tmp_path)
    result = get_kind("schema_linking").run(spec, reporter)
    assert latest_checkpoint(reporter.checkpoint_dir()).step == spec.train.steps  # type: ignore[union-attr]
    assert result["grpo"] is None and result["gain"] is None


def test_a_cold_start_trains_sft_on_the_first_questions_only_and_they_are_the_members() -> None:
    spec = _smoke(cold_start_examples=5)
    built, data = build(spec), build_dataset(spec)
    sampled = built.sample_batch(torch.Generator().manual_seed(0), torch.device("cpu"))[0]
    first_five = {tuple(row) for row in supervised_examples(data.train, data.vocab)[0][:5].tolist()}
    assert {tuple(row) for row in sampled.tolist()} <= first_five
    assert built.membership is not None
    assert built.membership.members.texts == data.train.texts[:5]  # type: ignore[union-attr]
    assert built.training_items.texts == data.train.texts[:5]  # type: ignore[union-attr]


def test_the_policy_shares_the_sequence_models_trunk_and_initialisation() -> None:
    # A recurrent mixer keeps its own initialisation (S6's dt_proj), and tied embeddings
    # give the word logits from the token embedding: the trunk is SequenceModel's own.
    spec = SequenceModelSpec(n_layer=1, width=16, mixer={"type": "s6"}, tie_embeddings=True)
    vocab = SchemaVocab.for_shape(SHAPE)
    torch.manual_seed(0)
    reference = SequenceModel(spec, vocab.size, 12)
    torch.manual_seed(0)
    policy = PointerPolicy(spec, vocab.size, 12, vocab.n_slots)
    for name, value in reference.state_dict().items():
        assert torch.equal(policy.trunk.state_dict()[name], value), name
    idx = torch.tensor([[vocab.id("<schema>"), vocab.id("singer"), vocab.slot_start]])
    words = policy(idx)[..., : vocab.slot_start]
    assert torch.allclose(words, reference(idx)[..., : vocab.slot_start], atol=1e-6)
    assert policy.trunk.head.weight is policy.trunk.tok_emb.weight
    tied = SchemaLinkingSpec.model_validate(
        {"kind": "schema_linking", "model": {"tie_embeddings": True, "n_layer": 1}}
    )
    model = build(tied).make_model()
    assert tied.parameter_count() == sum(p.numel() for p in model.parameters())


def test_grpo_samples_without_dropout() -> None:
    spec = _smoke(model={"width": 16, "n_layer": 1, "dropout": 0.5})
    data = build_dataset(spec)
    model = build(spec).make_model().train()
    modes: list[bool] = []
    model.register_forward_pre_hook(lambda module, args: modes.append(module.training))
    objective = _grpo_objective(spec, spec.grpo, data, model)  # type: ignore[arg-type]
    objective(model, (torch.tensor([0]), torch.tensor([1])))
    assert False in modes and True in modes  # sampled in eval mode, scored in train mode
    assert model.training


def _with_pool(pool: int | None, **fields: object) -> SchemaLinkingSpec:
    grpo = {**SchemaLinkingSpec.smoke_fields["grpo"], "prompt_pool": pool}
    return _smoke(grpo=grpo, **fields)


def test_grpo_draws_its_prompts_from_the_first_prompt_pool_questions_only() -> None:
    spec = _with_pool(5)
    assert spec.grpo is not None
    sampler, rng = grpo_prompt_sampler(spec, spec.grpo), torch.Generator().manual_seed(0)
    drawn = {int(row) for _ in range(200) for row in sampler(rng, torch.device("cpu"))[0]}
    assert drawn == set(range(5))  # every pool prompt, and nothing past the pool
    everything = _with_pool(None)
    assert everything.grpo is not None
    sampler = grpo_prompt_sampler(everything, everything.grpo)
    drawn = {int(row) for _ in range(400) for row in sampler(rng, torch.device("cpu"))[0]}
    assert drawn == set(range(len(build_dataset(everything).train)))  # null: all 24


def test_the_pool_view_scores_greedy_answers_to_the_pools_questions() -> None:
    # SFT's view covers its 2 cold-start questions, the pool view GRPO's 5 prompts.
    spec = _with_pool(5, cold_start_examples=2)
    data = build_dataset(spec)
    model = build(spec).make_model()
    views = evaluate_policy(spec, data, model, HeldOutAnswers(spec, data))
    assert views["train"]["n_questions"] == 2
    assert views["grpo_pool"]["n_questions"] == 5
    pool = data.train.subset(list(range(5)))
    texts = decode_answers(model.eval(), pool, data.vocab, spec.answer_tokens())
    assert views["grpo_pool"] == answer_metrics(texts, pool.gold, spec.reward_weights())
    # At most eval_train_questions of a larger pool are scored.
    capped = _with_pool(20, eval_train_questions=7)
    views = evaluate_policy(capped, data, model, HeldOutAnswers(capped, data))
    assert views["grpo_pool"]["n_questions"] == 7


def test_a_run_reports_the_pool_before_and_after_grpo_and_none_without_grpo(tmp_path) -> None:
    result = get_kind("schema_linking").run(_with_pool(3), InMemoryReporter(directory=tmp_path))
    assert result["grpo_prompts"] == 3
    assert result["sft"]["grpo_pool"]["n_questions"] == 3
    assert result["grpo"]["grpo_pool"]["n_questions"] == 3
    assert set(result["grpo"]["grpo_pool"]) == set(result["grpo"]["train"])
    sft_only = get_kind("schema_linking").run(_smoke(grpo=None), InMemoryReporter())
    assert "grpo_pool" not in sft_only["sft"] and sft_only["grpo_prompts"] is None


def test_a_stored_spec_hashes_as_before_the_prompt_pool_field() -> None:
    stored = SchemaLinkingSpec.model_validate({"kind": "schema_linking"})
    explicit = SchemaLinkingSpec.model_validate(
        {"kind": "schema_linking", "grpo": {"prompt_pool": None}}
    )
    pooled = SchemaLinkingSpec.model_validate(
        {"kind": "schema_linking", "grpo": {"prompt_pool": 16}}
    )
    assert spec_hash(stored) == spec_hash(explicit) == STORED_HASH
    assert spec_hash(pooled) != STORED_HASH


def test_the_doctests_of_the_kinds_modules_pass() -> None:
    for module in (schemas, schema_answers, schema_prompts, grpo):
        failed, tried = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert tried > 0 and failed == 0, module.__name__
