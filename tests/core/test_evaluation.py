"""The kinds' scoring on stand-in models whose answers are known: argmax recall, summed
continuation log-likelihood (checked by hand), multiple choice, verbatim reproduction and
exact answers to arithmetic problems and capital questions."""

import doctest
import math

import pytest
import torch

import core.evaluation
from core.data.arithmetic import arithmetic_problems
from core.data.fictsheets import MultipleChoice, WordVocab
from core.data.names import fictional_facts
from core.evaluation import (
    argmax_recall,
    continuation_log_likelihoods,
    multiple_choice_correct,
    score_arithmetic,
    score_facts,
    verbatim_matches,
)
from core.training.trainer import IGNORE_INDEX

SEPARATOR = "<doc>"


class Oracle(torch.nn.Module):
    """Predicts `answers` (N, T) for the rows it is fed, in order (to test the scorer)."""

    def __init__(self, answers: torch.Tensor, vocab: int) -> None:
        super().__init__()
        self.answers, self.vocab = answers, vocab
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.offset = 0

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        rows = self.answers[self.offset : self.offset + idx.shape[0]].clamp(min=0)
        self.offset += idx.shape[0]
        return torch.nn.functional.one_hot(rows, self.vocab).float()  # (B, T, V)


def test_argmax_recall_counts_only_scored_positions_and_whole_items() -> None:
    targets = torch.tensor([[IGNORE_INDEX, 3, 4], [IGNORE_INDEX, 1, IGNORE_INDEX], [2, 2, 2]])
    answers = torch.tensor([[0, 3, 4], [5, 1, 5], [2, 0, 2]])  # unscored positions wrong
    inputs = torch.zeros_like(targets)
    recall = argmax_recall(Oracle(answers, 6), inputs, targets, batch_size=2)
    assert recall.accuracy == 5 / 6  # one miss among the six scored positions
    assert recall.items_recalled == 2  # the third item has the miss


def test_argmax_recall_of_nothing_is_zero() -> None:
    empty = torch.zeros(0, 4, dtype=torch.long)
    recall = argmax_recall(Oracle(empty, 3), empty, empty, batch_size=8)
    assert (recall.accuracy, recall.items_recalled) == (0.0, 0)


class Bigram(torch.nn.Module):
    """Next-token logits that depend only on the current token: `table[token]`."""

    def __init__(self, table: list[list[float]]) -> None:
        super().__init__()
        self.table = torch.nn.Parameter(torch.tensor(table))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.table[idx]  # (B, T, V)


BIGRAM = [[0.0, 1.0, 2.0], [2.0, 0.0, 0.0], [0.0, 0.0, 3.0]]


def test_a_continuations_log_likelihood_is_the_sum_of_its_tokens_log_probabilities() -> None:
    # log p(2 | 0) + log p(1 | 2), from the table's rows 0 and 2.
    by_hand = (2.0 - math.log(1 + math.e + math.e**2)) + (0.0 - math.log(2 + math.e**3))
    scores = continuation_log_likelihoods(Bigram(BIGRAM), [[1, 0]], [[2, 1]], block_size=8)
    assert scores == [pytest.approx(by_hand, abs=1e-6)]
    # A context longer than the block loses its first tokens (a bigram never needs them).
    truncated = continuation_log_likelihoods(Bigram(BIGRAM), [[1, 0]], [[2, 1]], block_size=3)
    assert truncated == pytest.approx(scores, abs=1e-6)


class RunningMean(torch.nn.Module):
    """A causal stand-in: logits at t come from the mean embedding of tokens 0..t."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.embedding = torch.nn.Parameter(torch.randn(vocab, 4, generator=generator))
        self.head = torch.nn.Parameter(torch.randn(4, vocab, generator=generator))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        summed = self.embedding[idx].cumsum(1)  # (B, T, 4)
        counts = torch.arange(1, idx.shape[1] + 1)[None, :, None]
        return (summed / counts) @ self.head  # (B, T, V)


def test_right_padding_in_a_batch_does_not_change_any_score() -> None:
    model = RunningMean(vocab=7)
    contexts = [[1, 2, 3, 4, 5], [6], [2, 2]]
    continuations = [[1], [3, 4, 5], [0, 6]]
    batched = continuation_log_likelihoods(model, contexts, continuations, block_size=16)
    alone = [
        continuation_log_likelihoods(model, [c], [x], block_size=16)[0]
        for c, x in zip(contexts, continuations, strict=True)
    ]
    assert batched == pytest.approx(alone, abs=1e-5)


class PrefersOneToken(torch.nn.Module):
    """A stand-in LM whose next-token distribution always favours one token."""

    def __init__(self, vocab_size: int, favourite: int) -> None:
        super().__init__()
        self.logits = torch.nn.Parameter(torch.zeros(vocab_size))
        with torch.no_grad():
            self.logits[favourite] = 5.0

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(*idx.shape, -1)  # (B, T, V)


def test_multiple_choice_picks_the_option_the_model_finds_most_likely() -> None:
    options = ("Kelsu", "Bramo", "Tivex", "Dorn")
    vocab = WordVocab.from_texts(["Who led it ? Answer :", *options], special=(SEPARATOR,))
    items = [
        MultipleChoice(0, "leader", "Who led it? Answer:", options, answer_index=2),
        MultipleChoice(1, "leader", "Who led it? Answer:", options, answer_index=0),
    ]
    model = PrefersOneToken(vocab.size, favourite=vocab.id("Tivex"))
    correct = multiple_choice_correct(model, vocab, items, block_size=32, separator=SEPARATOR)
    assert correct == [True, False]
    everything_right = [items[0], items[0], items[0]]
    assert (
        multiple_choice_correct(model, vocab, everything_right, block_size=32, separator=SEPARATOR)
        == [True] * 3
    )


class CountsUp(torch.nn.Module):
    """A stand-in LM that predicts token t + 1 after token t."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot((idx + 1) % self.vocab_size, self.vocab_size).float()


def test_verbatim_needs_every_continuation_token_exact() -> None:
    sequences = [[1, 2, 3, 4, 5, 6], [7, 8, 9, 0, 1, 2], [1, 2, 3, 4, 9, 6]]
    hits = verbatim_matches(
        CountsUp(10), sequences, prefix_tokens=3, continuation_tokens=3, block_size=8
    )
    assert hits == [True, True, False]
    assert verbatim_matches(CountsUp(10), [], 3, 3, 8) == []


def test_arithmetic_scoring_matches_the_papers_pattern_for_a_model_that_misses_only_held_out() -> (
    None
):
    problems = arithmetic_problems()
    held_out = ("5+7", "7+5", "5-7", "7-5")
    completions = [("99>" if p.key in held_out else f"{p.answer}> ") for p in problems]
    metrics = score_arithmetic(problems, completions, held_out)
    assert metrics["eval/arithmetic_all"] == 0.98
    assert metrics["eval/arithmetic_seen"] == 1.0
    assert metrics["eval/arithmetic_held_out"] == 0.0
    assert metrics["eval/arithmetic_add"] == metrics["eval/arithmetic_sub"] == 0.98


def test_arithmetic_answers_must_be_the_exact_signed_integer() -> None:
    by_key = {p.key: p for p in arithmetic_problems()}
    problems = [by_key["1-4"], by_key["9+9"], by_key["2+2"]]
    metrics = score_arithmetic(problems, ["-3>", "18>", "4 "], ())
    assert metrics["eval/arithmetic_all"] == 1.0
    assert "eval/arithmetic_held_out" not in metrics  # no held-out problem to score
    wrong = score_arithmetic(problems, ["3>", "1>", ""], ())
    assert wrong["eval/arithmetic_all"] == 0.0


def test_fact_scoring_ignores_case_spaces_and_a_final_full_stop_only() -> None:
    facts = fictional_facts(3, seed=0)
    right = [f" {facts[0].capital.upper()}. ", facts[1].capital, facts[2].capital + "x"]
    assert score_facts(facts, right)["eval/facts"] == 2 / 3


def test_the_docstring_examples_hold() -> None:
    assert doctest.testmod(core.evaluation).failed == 0
