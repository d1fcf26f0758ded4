"""Schema-R1's answer parsing, rule reward and metrics, on hand-computed cases."""

from __future__ import annotations

import pytest

from core.data.schema_answers import (
    RewardWeights,
    accuracy_reward,
    format_reward,
    mean_scores,
    parse_answer,
    render_answer,
    score_set,
)

GOLD = "###Tables: concert, stadium;###Columns: concert.stadium_id, stadium.id, stadium.name;"


def test_an_exact_answer_earns_the_maximum_of_18() -> None:
    assert accuracy_reward(GOLD, GOLD) == 18.0


def test_missing_every_gold_item_costs_the_miss_penalties_whatever_else_is_predicted() -> None:
    wrong = "###Tables: singer, book;###Columns: singer.name;"
    assert accuracy_reward(wrong, GOLD) == -6.0 - 4.0


def test_recall_earns_its_share_and_false_positives_cost_their_share_of_the_prediction() -> None:
    # Tables: both gold found (10); 1 of 3 predicted is wrong: −4·1/3.
    # Columns: 1 of 3 gold found (8/3); 1 of 2 predicted is wrong: −3·1/2.
    answer = "###Tables: concert, stadium, singer;###Columns: stadium.name, singer.age;"
    expected = 10 - 4 / 3 + 8 / 3 - 3 / 2
    assert accuracy_reward(answer, GOLD) == pytest.approx(expected)


def test_a_superset_of_every_table_costs_at_most_4_however_many_are_added() -> None:
    many = ", ".join(["concert", "stadium", *[f"t{i}" for i in range(98)]])
    answer = f"###Tables: {many};###Columns: concert.stadium_id, stadium.id, stadium.name;"
    assert accuracy_reward(answer, GOLD) == pytest.approx(18 - 4 * 98 / 100)


def test_names_are_compared_lower_cased() -> None:
    upper = "###Tables: CONCERT, Stadium;###Columns: Concert.Stadium_ID, STADIUM.ID, stadium.Name;"
    assert accuracy_reward(upper, GOLD) == 18.0


def test_a_missing_final_semicolon_leaves_no_columns_and_the_column_miss_penalty() -> None:
    answer = "###Tables: concert, stadium;###Columns: concert.stadium_id, stadium.id"
    assert parse_answer(answer).columns == frozenset()
    assert accuracy_reward(answer, GOLD) == 10.0 - 4.0
    assert format_reward(answer) == 0.0


def test_a_missing_semicolon_after_the_tables_reads_up_to_the_next_one_as_tables() -> None:
    # As the paper's regex does: `Tables:\s*(.*?);` runs on into the column list.
    answer = "###Tables: concert, stadium###Columns: stadium.name;"
    assert parse_answer(answer).tables == {"concert", "stadium###columns: stadium.name"}
    assert parse_answer(answer).columns == {"stadium.name"}
    # Tables: 1 of 2 found (5), 1 of 2 predicted wrong (−2); columns: 1 of 3 found, none wrong.
    assert accuracy_reward(answer, GOLD) == pytest.approx(5 - 2 + 8 / 3)


def test_a_gold_without_a_column_list_is_recalled_by_default_and_only_false_positives_cost() -> (
    None
):
    # The paper divides by the gold set's size here (zero): memlab's guard.
    gold = "###Tables: concert;"
    assert parse_answer(gold).columns == frozenset()
    assert accuracy_reward("###Tables: concert;", gold) == 18.0
    assert accuracy_reward("###Tables: concert;###Columns: concert.id;", gold) == 18.0 - 3.0


def test_an_empty_list_holds_the_empty_name_as_the_papers_split_does() -> None:
    # "".split(", ") is [""]: a gold `###Columns: ;` has one item, the empty name, and
    # an answer listing nothing there hits it; the guard above does not apply.
    gold = "###Tables: concert;###Columns: ;"
    assert parse_answer(gold).columns == {""}
    assert accuracy_reward("###Tables: concert;###Columns: ;", gold) == 18.0
    # concert.id is a false positive beside the missed empty name: the miss penalty.
    assert accuracy_reward("###Tables: concert;###Columns: concert.id;", gold) == 10.0 - 4.0


def test_a_dangling_separator_predicts_the_empty_name_a_false_positive() -> None:
    answer = (
        "###Tables: concert, stadium, ;###Columns: concert.stadium_id, stadium.id, stadium.name;"
    )
    assert parse_answer(answer).tables == {"concert", "stadium", ""}
    # Tables: both gold found (10), 1 of 3 predicted is wrong (−4/3); columns exact (8).
    assert accuracy_reward(answer, GOLD) == pytest.approx(18 - 4 / 3)
    assert score_set(parse_answer(answer).tables, parse_answer(GOLD).tables).precision == (
        pytest.approx(2 / 3)
    )


def test_column_names_are_stripped_and_table_names_are_not_as_in_the_paper() -> None:
    answer = "###Tables: concert , stadium;###Columns:  concert.stadium_id , stadium.id;"
    parsed = parse_answer(answer)
    assert parsed.tables == {"concert ", "stadium"}
    assert parsed.columns == {"concert.stadium_id", "stadium.id"}


def test_an_empty_prediction_misses_everything() -> None:
    assert accuracy_reward("", GOLD) == -10.0
    assert accuracy_reward("###Tables: ;###Columns: ;", GOLD) == -10.0


def test_the_format_reward_wants_exactly_both_lists_each_ended_by_a_semicolon() -> None:
    assert format_reward(GOLD) == 1.0
    assert format_reward("###Tables: ;###Columns: ;") == 1.0
    assert format_reward("###Columns: stadium.id;###Tables: stadium;") == 0.0
    assert format_reward(GOLD + " and more") == 0.0


def test_render_answer_writes_what_parse_answer_reads() -> None:
    text = render_answer(["concert"], ["concert.id", "concert.year"])
    assert text == "###Tables: concert;###Columns: concert.id, concert.year;"
    assert parse_answer(text).columns == {"concert.id", "concert.year"}


def test_set_scores_separate_filter_from_exact_and_precision_shows_the_superset() -> None:
    superset = score_set(frozenset({"a", "b", "c", "d"}), frozenset({"a", "b"}))
    assert (superset.exact, superset.filter, superset.recall) == (0.0, 1.0, 1.0)
    assert superset.precision == 0.5
    partial = score_set(frozenset({"a"}), frozenset({"a", "b"}))
    assert (partial.exact, partial.filter, partial.recall, partial.precision) == (0, 0, 0.5, 1)
    nothing = score_set(frozenset(), frozenset({"a"}))
    assert (nothing.recall, nothing.precision) == (0.0, 0.0)


def test_an_empty_prediction_is_counted_apart_from_a_wrong_one() -> None:
    gold = frozenset({"a"})
    wrong = score_set(frozenset({"b"}), gold)
    assert (wrong.precision, wrong.empty) == (0.0, 0.0)
    for nothing in (frozenset(), frozenset({""})):  # no list, or `###Tables: ;`
        scores = score_set(nothing, gold)
        assert (scores.precision, scores.empty) == (0.0, 1.0)
    rates = mean_scores([wrong, score_set(frozenset(), gold), score_set(gold, gold)])
    assert rates["empty_rate"] == pytest.approx(1 / 3)
    assert rates["precision"] == pytest.approx(1 / 3)


def test_the_training_reward_weighs_accuracy_and_format() -> None:
    weights = RewardWeights(accuracy=0.5, format=2.0)
    assert weights.reward(GOLD, GOLD) == 0.5 * 18 + 2.0
    cut = "###Tables: concert, stadium;###Columns: concert.stadium_id"
    assert weights.reward(cut, GOLD) == 0.5 * (10 - 4)
