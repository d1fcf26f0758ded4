"""Schema-R1's answers as text: parsing `###Tables: …;###Columns: …;`, its rule rewards,
and the metrics its evaluation reports (exact, filter, recall) plus precision.

Parsing follows the paper's `accuracy_reward2` (Schema-R1 repository, `src/open_r1/
rewards.py`, read at commit 41569a5^): the first match of `Tables:\\s*(.*?);` and of
`Columns:\\s*(.*?);`, split on `', '`, every name lower-cased, column names (not table
names, as in the paper) stripped of surrounding spaces. Empty names are kept, as the
paper's split keeps them: `###Tables: concert, ;` predicts {"concert", ""}, and the
empty name is a false positive. So a completion whose final `;` is missing has no column
set, and one missing the `;` after its tables reads everything up to the next `;` as
table names, as the paper's reward would.

memlab's one choice where the paper's code fails: a gold answer with no parsable set
(the regex finds no match; the paper divides by its size, zero) counts as fully
recalled, so only the false-positive penalty applies to it. A gold `###Columns: ;` is
not empty: it holds the empty name, as in the paper.

Example:
    >>> gold = "###Tables: concert, stadium;###Columns: concert.stadium_id, stadium.id;"
    >>> accuracy_reward("###Tables: concert, stadium;###Columns: concert.stadium_id;", gold)
    14.0
    >>> accuracy_reward("###Tables: singer;###Columns: singer.name;", gold)
    -10.0
    >>> format_reward("###Tables: concert;###Columns: concert.id;")
    1.0
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

TABLES_PATTERN = re.compile(r"Tables:\s*(.*?);")
COLUMNS_PATTERN = re.compile(r"Columns:\s*(.*?);")
FORMAT_PATTERN = re.compile(r"###Tables:[^;]*;###Columns:[^;]*;")

# The paper's weights: recall of tables and columns, false positives (divided by the
# number predicted), and the penalty when no gold item is hit.
TABLE_RECALL_WEIGHT, COLUMN_RECALL_WEIGHT = 10.0, 8.0
TABLE_FALSE_POSITIVE_WEIGHT, COLUMN_FALSE_POSITIVE_WEIGHT = 4.0, 3.0
TABLE_MISS_PENALTY, COLUMN_MISS_PENALTY = 6.0, 4.0
MAX_ACCURACY_REWARD = TABLE_RECALL_WEIGHT + COLUMN_RECALL_WEIGHT
MIN_ACCURACY_REWARD = -(TABLE_MISS_PENALTY + COLUMN_MISS_PENALTY)


@dataclass(frozen=True)
class SchemaAnswer:
    """The table and column names an answer lists, lower-cased."""

    tables: frozenset[str]
    columns: frozenset[str]


def _names(pattern: re.Pattern[str], text: str, strip: bool) -> frozenset[str]:
    """The lower-cased names of the first match's list, stripped if `strip`; empty names
    kept (the paper's `set(group.split(', '))`); the empty set when nothing matches."""
    match = pattern.search(text)
    if match is None:
        return frozenset()
    names = match.group(1).split(", ")
    return frozenset((name.strip() if strip else name).lower() for name in names)


def parse_answer(text: str) -> SchemaAnswer:
    """The sets an answer names, parsed as the paper's reward parses them.

    >>> answer = parse_answer("###Tables: Concert, STADIUM;###Columns: concert.id")
    >>> sorted(answer.tables), sorted(answer.columns)
    (['concert', 'stadium'], [])
    >>> sorted(parse_answer("###Tables: concert, ;###Columns:  a.id ;").columns)
    ['a.id']
    >>> sorted(parse_answer("###Tables: concert, ;###Columns:  a.id ;").tables)
    ['', 'concert']
    """
    return SchemaAnswer(
        _names(TABLES_PATTERN, text, strip=False), _names(COLUMNS_PATTERN, text, strip=True)
    )


def render_answer(tables: list[str], columns: list[str]) -> str:
    """The answer text for these names, in the paper's format."""
    return f"###Tables: {', '.join(tables)};###Columns: {', '.join(columns)};"


def _set_reward(
    predicted: frozenset[str],
    gold: frozenset[str],
    recall_weight: float,
    false_positive_weight: float,
    miss_penalty: float,
) -> float:
    hit = len(predicted & gold)
    if not gold:  # memlab's guard where the paper divides by zero: only false positives cost
        return recall_weight - (false_positive_weight if predicted else 0.0)
    reward = recall_weight * hit / len(gold)
    if hit == 0:
        return reward - miss_penalty
    return reward - false_positive_weight * len(predicted - gold) / len(predicted)


def accuracy_reward(completion: str, gold: str) -> float:
    """The paper's `accuracy_reward2`: +10·table recall + 8·column recall; false positives
    cost 4 (tables) and 3 (columns) times their share of the predicted set; a set whose
    gold items are all missed costs 6 (tables) or 4 (columns) instead. From −10 to +18."""
    predicted, truth = parse_answer(completion), parse_answer(gold)
    tables = _set_reward(
        predicted.tables,
        truth.tables,
        TABLE_RECALL_WEIGHT,
        TABLE_FALSE_POSITIVE_WEIGHT,
        TABLE_MISS_PENALTY,
    )
    columns = _set_reward(
        predicted.columns,
        truth.columns,
        COLUMN_RECALL_WEIGHT,
        COLUMN_FALSE_POSITIVE_WEIGHT,
        COLUMN_MISS_PENALTY,
    )
    return tables + columns


def format_reward(completion: str) -> float:
    """1 when the whole completion is `###Tables: …;###Columns: …;`, else 0 (memlab's
    stand-in for the paper's `<think>…</think><answer>…</answer>` format check)."""
    return 1.0 if FORMAT_PATTERN.fullmatch(completion.strip()) else 0.0


@dataclass(frozen=True)
class RewardWeights:
    """How GRPO's training reward weighs the paper's accuracy reward and the format reward
    (the paper's 0.5 and 0.5)."""

    accuracy: float = 0.5
    format: float = 0.5

    def reward(self, completion: str, gold: str) -> float:
        """accuracy · accuracy_reward + format · format_reward."""
        return self.accuracy * accuracy_reward(completion, gold) + self.format * format_reward(
            completion
        )


@dataclass(frozen=True)
class SetScores:
    """How one predicted set compares with its gold set, sets as `parse_answer` reads them
    (an empty name, from a dangling `, `, is a predicted item like any other).

    exact: predicted == gold; filter: gold ⊆ predicted (the paper's "filter accuracy");
    recall: |hit| / |gold| (1 for an empty gold set); precision: |hit| / |predicted|
    (1 when both are empty, 0 when only the prediction is, so "predicted nothing" and
    "predicted only wrong names" both score 0: `empty` tells them apart); empty: 1 when
    the prediction names nothing (no set, or only the empty name).
    """

    exact: float
    filter: float
    recall: float
    precision: float
    empty: float
    predicted: int
    gold: int


def score_set(predicted: frozenset[str], gold: frozenset[str]) -> SetScores:
    """How `predicted` scores against `gold`.

    >>> score_set(frozenset({"a", "b"}), frozenset({"a"}))
    SetScores(exact=0.0, filter=1.0, recall=1.0, precision=0.5, empty=0.0, predicted=2, gold=1)
    """
    hit = len(predicted & gold)
    recall = hit / len(gold) if gold else 1.0
    precision = hit / len(predicted) if predicted else float(not gold)
    return SetScores(
        exact=float(predicted == gold),
        filter=float(gold <= predicted),
        recall=recall,
        precision=precision,
        empty=float(not predicted - {""}),
        predicted=len(predicted),
        gold=len(gold),
    )


def mean_scores(scores: list[SetScores]) -> dict[str, float]:
    """Each score averaged over items: exact, filter, recall, precision, the rate of empty
    predictions, and the mean predicted and gold set sizes (the superset check)."""
    count = max(len(scores), 1)
    return {
        "exact": sum(s.exact for s in scores) / count,
        "filter": sum(s.filter for s in scores) / count,
        "recall": sum(s.recall for s in scores) / count,
        "precision": sum(s.precision for s in scores) / count,
        "empty_rate": sum(s.empty for s in scores) / count,
        "mean_predicted": sum(s.predicted for s in scores) / count,
        "mean_gold": sum(s.gold for s in scores) / count,
    }


def answer_metrics(
    texts: Sequence[str], golds: Sequence[str], weights: RewardWeights
) -> dict[str, Any]:
    """Answers against their gold answers: tables and columns scores (`mean_scores`), the
    mean accuracy reward, the rate of well-formed answers, and the mean training reward."""
    predicted = [parse_answer(text) for text in texts]
    truth = [parse_answer(gold) for gold in golds]
    pairs = list(zip(predicted, truth, strict=True))
    answers = list(zip(texts, golds, strict=True))
    count = max(len(texts), 1)
    return {
        "tables": mean_scores([score_set(p.tables, g.tables) for p, g in pairs]),
        "columns": mean_scores([score_set(p.columns, g.columns) for p, g in pairs]),
        "accuracy_reward": sum(accuracy_reward(t, g) for t, g in answers) / count,
        "format_rate": sum(format_reward(t) for t in texts) / count,
        "reward": sum(weights.reward(t, g) for t, g in answers) / count,
        "n_questions": len(texts),
    }
