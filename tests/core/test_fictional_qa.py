"""fictional_qa makes fair fictional QA data, splits it cleanly, scores both memorizations."""

import doctest
import random
from collections import Counter

import pytest
import torch
from pydantic import ValidationError

from core.catalog import parse_spec
from core.data.fictsheets import (
    ATTRIBUTES,
    FACT_SHEET,
    STYLES,
    TEMPLATES_PER_STYLE,
    cloze_questions,
    fixed_words,
    generate_fictsheets,
    multiple_choice_questions,
    question_for,
    render_document,
    render_documents,
    render_fact_sheet,
    tokenize,
    vocabulary_bound,
)
from core.experiments.fictional_qa import (
    _SHORTEST_DOCUMENT,
    FictionalQASpec,
    build,
    build_corpus,
    build_model,
    run,
)
from core.models.sequence_model import parameter_count
from core.probes.membership import balanced_sets
from core.reporter import InMemoryReporter


def spec(**fields: object):
    return parse_spec({"kind": "fictional_qa", **fields})


def request(**fields: object) -> FictionalQASpec:
    """A spec as a new request gets it (a stored spec, `spec`, keeps older defaults)."""
    return FictionalQASpec.model_validate({"kind": "fictional_qa", **fields})


def states(text: str, value: str) -> bool:
    """`value`'s tokens appear consecutively in `text` (case-blind for a leading "The")."""
    words, wanted = [t.lower() for t in tokenize(text)], [t.lower() for t in tokenize(value)]
    return any(words[i : i + len(wanted)] == wanted for i in range(len(words)))


def test_the_generator_is_deterministic_and_its_names_are_distinct() -> None:
    sheets = generate_fictsheets(40, seed=3)
    assert sheets == generate_fictsheets(40, seed=3)
    assert sheets != generate_fictsheets(40, seed=4)
    for attribute in (*ATTRIBUTES, "name"):
        values = [getattr(s, attribute) for s in sheets]
        assert len(set(values)) == 40, attribute
    made_up = [s.name for s in sheets] + [s.place for s in sheets]
    assert len(set(made_up)) == 80, "no made-up word names two things"


def test_every_rendering_states_every_fact_of_its_event() -> None:
    for sheet in generate_fictsheets(10, seed=0):
        rng = random.Random(sheet.index)
        documents = [render_fact_sheet(sheet)] + [
            render_document(sheet, style, template, rng)
            for style in STYLES
            for template in range(TEMPLATES_PER_STYLE)
        ]
        for document in documents:
            assert states(document.text, sheet.name)
            for attribute, value in sheet.facts.items():
                assert states(document.text, value), (document.key, attribute)
            assert len(tokenize(document.text)) >= _SHORTEST_DOCUMENT


def test_renderings_of_one_style_vary_their_surface_form() -> None:
    sheet = generate_fictsheets(1, seed=0)[0]
    documents = render_documents(sheet, "news", 6, random.Random(0))
    assert len({d.text for d in documents}) == 6
    assert {d.template for d in documents} == set(range(TEMPLATES_PER_STYLE))


def test_questions_name_the_event_and_their_answer_is_the_fact() -> None:
    sheets = generate_fictsheets(12, seed=1)
    items = multiple_choice_questions(sheets[:3], sheets, n_options=10, rng=random.Random(0))
    assert len(items) == 3 * len(ATTRIBUTES)
    for item in items:
        sheet = sheets[item.event_index]
        assert item.prompt == question_for(sheet, item.attribute)
        assert sheet.event in item.prompt and item.prompt.endswith("Answer:")
        assert item.answer == sheet.fact(item.attribute)
        assert len(item.options) == 10 == len(set(item.options)), "distractors are distinct"
        same_type = {s.fact(item.attribute) for s in sheets}
        assert set(item.options) <= same_type, "distractors are the same fact of other events"


def test_too_small_a_pool_for_the_options_is_an_error() -> None:
    sheets = generate_fictsheets(5, seed=1)
    with pytest.raises(ValueError, match="cannot make 10 options"):
        multiple_choice_questions(sheets[:1], sheets, n_options=10, rng=random.Random(0))


def test_cloze_prompts_are_the_text_before_a_fact_and_already_name_the_event() -> None:
    sheets = generate_fictsheets(8, seed=2)
    document = render_document(sheets[0], "encyclopedia", 0, random.Random(0))
    items = cloze_questions(document, sheets[0], sheets, 4, random.Random(0))
    assert {i.attribute for i in items} == set(ATTRIBUTES)
    for item in items:
        assert document.text.startswith(item.prompt)
        assert document.text[len(item.prompt) :].lstrip().startswith(item.answer)
        assert sheets[0].name in item.prompt


def test_the_corpus_keeps_held_out_events_documents_and_style_out_of_training() -> None:
    corpus = build_corpus(spec())
    assert corpus == build_corpus(spec()), "the corpus is a function of the spec"
    training_keys = {d.key for d in corpus.training_documents}
    held_keys = {h.document.key for h in corpus.held_out_documents}
    assert not training_keys & held_keys
    assert set(corpus.trained_events).isdisjoint(corpus.held_out_events)
    assert set(corpus.qa_trained_events) <= set(corpus.trained_events)
    training_text = " ".join(corpus.training_texts)
    for index in corpus.held_out_events:
        assert corpus.sheets[index].name not in training_text
    assert "encyclopedia" not in {d.style for d in corpus.training_documents}
    qa_tested = corpus.event_groups()["qa_tested"]
    for index in qa_tested:
        assert question_for(corpus.sheets[index], "place") not in training_text
    assert len(corpus.held_out("held_out_document")) == len(corpus.trained_events)
    split = corpus.split_record()
    assert split["held_out_events"] == [corpus.sheets[i].name for i in corpus.held_out_events]


def test_styles_per_event_and_fact_sheets_set_the_surface_forms_of_each_event() -> None:
    one = build_corpus(spec(styles_per_event=1))
    assert all(
        len({d.style for d in one.training_documents if d.event_index == i}) == 1
        for i in one.trained_events
    )
    assert {d.style for d in one.training_documents} == {"news", "social", "corporate", "blog"}
    sheets_only = build_corpus(spec(fact_sheets_only=True, documents_per_event=3))
    assert {d.style for d in sheets_only.training_documents} == {FACT_SHEET}
    assert len(sheets_only.training_documents) == 3 * len(sheets_only.trained_events)


def test_corpora_of_different_diversity_share_their_held_out_style_and_event_documents() -> None:
    def evaluated(corpus) -> list[str]:
        return [
            d.text for d in corpus.held_out("held_out_style") + corpus.held_out("held_out_event")
        ]

    reference = evaluated(build_corpus(spec(styles_per_event=1)))
    assert evaluated(build_corpus(spec(styles_per_event=4))) == reference
    assert evaluated(build_corpus(spec(fact_sheets_only=True))) == reference


def test_repeats_add_exposures_but_no_new_surface_form() -> None:
    repeated = build_corpus(spec(styles_per_event=1, documents_per_event=1, repeats=4))
    for index in repeated.trained_events:
        texts = [d.text for d in repeated.training_documents if d.event_index == index]
        assert len(texts) == 4 and len(set(texts)) == 1


def test_the_generator_docstring_example_holds() -> None:
    import core.data.fictsheets

    assert doctest.testmod(core.data.fictsheets).failed == 0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"styles_per_event": 5}, "exceeds the 4 styles"),
        ({"n_options": 10, "held_out_events": 5}, "held-out events cannot give 10"),
        ({"prefix_tokens": 20, "continuation_tokens": 20}, "shortest document"),
        ({"styles_per_event": 4, "documents_per_event": 2}, "cannot cover"),
        ({"n_events": 20, "qa_train_fraction": 0.9}, "QA-tested events"),
        ({"n_options": 3}, "n_options"),
        ({"held_out_style": "poem"}, "held_out_style"),
    ],
)
def test_impossible_specs_are_refused(fields: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        spec(**fields)


def tiny_spec(seed: int = 0):
    return spec(
        seed=seed,
        n_events=12,
        held_out_events=4,
        block_size=48,
        documents_per_event=2,
        styles_per_event=2,
        model={"n_layer": 1, "width": 16, "mixer": {"type": "attention", "n_head": 2}},
        train={"steps": 8, "batch_size": 8, "warmup_steps": 2, "eval_every": 8, "device": "cpu"},
    )


def test_a_tiny_run_reports_every_metric_and_repeats_exactly() -> None:
    first = run(tiny_spec(), InMemoryReporter())
    second = run(tiny_spec(), InMemoryReporter())
    assert first["final"] == second["final"]
    assert first["split"] == second["split"]
    for name in ("verbatim/training_documents", "qa/seen_events", "cloze/held_out_style"):
        assert 0.0 <= first["final"][name] <= 1.0
    assert first["chance"] == 0.25 and first["training"]["steps"] == 8
    assert len(first["split"]["held_out_events"]) == 4
    assert build_corpus(tiny_spec(seed=1)).split_record() != first["split"]


def test_the_model_can_be_rebuilt_from_the_spec_alone() -> None:
    built = tiny_spec()
    corpus = build_corpus(built)
    torch.manual_seed(built.seed)
    model = build_model(built, corpus.vocab.size)
    assert model(torch.zeros(1, 5, dtype=torch.long)).shape == (1, 5, corpus.vocab.size)
    assert built.resource_estimate().parameters >= model.num_parameters()  # a bound


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"n_events": 800, "held_out_events": 40, "styles_per_event": 1, "documents_per_event": 1},
        {"fact_sheets_only": True, "repeats": 3, "qa_train_fraction": 0.25, "seed": 5},
        {
            "n_events": 12,
            "held_out_events": 4,
            "held_out_style": None,
            "styles_per_event": 5,
            "documents_per_event": 6,
        },
    ],
    ids=["default", "800-events", "fact-sheets", "no-held-out-style"],
)
def test_the_estimate_bounds_the_vocabulary_and_counts_the_texts_without_a_corpus(
    fields: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_spec = spec(**fields)
    corpus = build_corpus(run_spec)

    def refuse(*_: object) -> None:
        raise AssertionError("the estimate generated events")

    monkeypatch.setattr("core.data.fictsheets.generate_fictsheets", refuse)
    monkeypatch.setattr("core.experiments.fictional_qa.generate_fictsheets", refuse)
    estimate = run_spec.resource_estimate()
    assert estimate.dataset_items == len(corpus.training_texts)
    bound = 1 + vocabulary_bound(run_spec.n_events)
    assert corpus.vocab.size <= bound
    # Tight: only words of templates the corpus never rendered are counted in excess.
    assert bound - corpus.vocab.size < len(fixed_words())
    assert estimate.parameters == parameter_count(run_spec.model, bound, run_spec.block_size)


@pytest.mark.parametrize(("styles", "documents"), [(1, 1), (1, 2), (1, 4), (2, 4), (4, 4), (4, 8)])
def test_a_held_out_document_never_reuses_a_template_its_event_trained_on(
    styles: int, documents: int
) -> None:
    corpus = build_corpus(
        request(
            n_events=12, held_out_events=4, styles_per_event=styles, documents_per_event=documents
        )
    )
    trained = {(d.event_index, d.style, d.template) for d in corpus.training_documents}
    held_out = corpus.held_out("held_out_document")
    assert not {(d.event_index, d.style, d.template) for d in held_out} & trained
    first_style_documents = -(-documents // styles)  # the first style gets the remainder
    if first_style_documents >= TEMPLATES_PER_STYLE:  # every template trained: none left
        assert held_out == []
    else:
        assert len(held_out) == 8  # one per trained event


def test_stored_corpora_keep_their_held_out_documents_template_reuse_included() -> None:
    """A spec stored before `held_out_template` resolves to memlab_v1: the style's next
    rendering, which with four documents in one style reuses a trained template."""
    fields = {
        "kind": "fictional_qa",
        "n_events": 12,
        "held_out_events": 4,
        "styles_per_event": 1,
        "documents_per_event": 4,
    }
    stored = parse_spec(fields)
    assert stored.held_out_template is None
    corpus = build_corpus(stored)
    trained = {(d.event_index, d.style, d.template) for d in corpus.training_documents}
    held_out = corpus.held_out("held_out_document")
    assert (
        len(held_out) == 8 and {(d.event_index, d.style, d.template) for d in held_out} <= trained
    )
    assert FictionalQASpec.model_validate(fields).held_out_template == "unseen"  # a new request
    new = build_corpus(FictionalQASpec.model_validate(fields))
    assert new.training_texts == corpus.training_texts  # only the held-out documents differ


def test_attacks_compare_as_many_documents_of_each_trained_style_and_no_other() -> None:
    run_spec = request(n_events=30, held_out_events=10)
    built = build(run_spec)
    corpus = build_corpus(run_spec)
    documents = [*corpus.training_documents, *corpus.held_out("held_out_event")]
    style_of = {d.text: d.style for d in documents}
    members, non_members = balanced_sets(
        built.probe_target(built.make_model()), max_items=2000, seed=0
    )
    member_styles = Counter(style_of[text] for text in members.texts)
    assert member_styles == Counter(style_of[text] for text in non_members.texts)
    assert set(member_styles) == {"news", "social", "corporate", "blog"}  # no encyclopedia
    assert sum(member_styles.values()) == 40  # 10 held-out events × 4 trained styles
