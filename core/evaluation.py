"""How the experiment kinds score a model: argmax recall on (N, T) examples, summed
log-likelihood of continuations, multiple choice, verbatim greedy reproduction, and exact
answers to arithmetic problems and capital questions.

Dimensions: N items, B a batch of them, T positions, V vocabulary. Every model here maps
token ids (B, T) to next-token logits (B, T, V); evaluation runs without gradients on the
model's own device.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from core.data.arithmetic import ArithmeticProblem
from core.data.fictsheets import MultipleChoice, WordVocab
from core.data.names import Fact
from core.training.trainer import IGNORE_INDEX


@dataclass(frozen=True)
class ArgmaxRecall:
    """How much of a set of (N, T) examples a model's argmax predictions get right."""

    accuracy: float  # fraction of scored positions whose argmax is the target
    items_recalled: int  # items whose every scored position is right


@torch.no_grad()
def argmax_recall(
    model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int
) -> ArgmaxRecall:
    """Score inputs (N, T) against targets (N, T), counting only positions whose target is
    not IGNORE_INDEX; no items give accuracy 0. `batch_size` rows go through the model at
    once (the kinds keep theirs: a different batching may move a near-tie argmax)."""
    device = next(model.parameters()).device
    correct = scored_total = recalled = 0
    for start in range(0, inputs.shape[0], batch_size):
        batch_target = targets[start : start + batch_size].to(device)  # (B, T)
        predictions = model(inputs[start : start + batch_size].to(device)).argmax(-1)  # (B, T)
        scored = batch_target != IGNORE_INDEX
        hits = (predictions == batch_target) & scored
        correct += int(hits.sum())
        scored_total += int(scored.sum())
        recalled += int((hits == scored).all(dim=1).sum())
    return ArgmaxRecall(correct / max(1, scored_total), recalled)


@torch.no_grad()
def continuation_log_likelihoods(
    model: torch.nn.Module,
    contexts: list[list[int]],
    continuations: list[list[int]],
    block_size: int,
    batch_size: int = 256,
) -> list[float]:
    """log p(continuation | context), summed over the continuation's tokens, per pair.

    Contexts too long for the model lose their first tokens. Sequences are right-padded,
    which a causal model never attends to from earlier positions. Log-probabilities are
    float32 (not the probes' float64), as the kinds' published accuracies were scored.
    """
    device = next(model.parameters()).device
    scores: list[float] = []
    for start in range(0, len(contexts), batch_size):
        rows = [
            (context + continuation)[-block_size:]
            for context, continuation in zip(
                contexts[start : start + batch_size],
                continuations[start : start + batch_size],
                strict=True,
            )
        ]
        lengths = [len(c) for c in continuations[start : start + batch_size]]
        width = max(len(row) for row in rows)
        tokens = torch.zeros(len(rows), width, dtype=torch.long)  # (B, T), right-padded
        for i, row in enumerate(rows):
            tokens[i, : len(row)] = torch.tensor(row)
        log_probs = F.log_softmax(model(tokens.to(device)).float(), dim=-1)  # (B, T, V)
        for i, (row, length) in enumerate(zip(rows, lengths, strict=True)):
            # The logits at position t predict token t + 1: the continuation's tokens are
            # predicted from the positions one before each of them.
            positions = torch.arange(len(row) - length - 1, len(row) - 1, device=device)
            targets = tokens[i, len(row) - length : len(row)].to(device)
            scores.append(float(log_probs[i, positions, targets].sum()))
    return scores


def multiple_choice_correct(
    model: torch.nn.Module,
    vocab: WordVocab,
    items: list[MultipleChoice],
    block_size: int,
    *,
    separator: str,
    context: dict[int, str] | None = None,
) -> list[bool]:
    """Per item: does the right option get the highest log-likelihood after the prompt?

    Every prompt starts with the `separator` token (as the training texts do); `context`
    (event index → text) is placed between it and the prompt of that event's items.
    Ties go to the first option in the item's order, which is random.
    """
    separator_id = vocab.id(separator)
    contexts, continuations = [], []
    for item in items:
        prefix = vocab.encode(context[item.event_index]) if context else []
        prompt = [separator_id, *prefix, *vocab.encode(item.prompt)]
        for option in item.options:
            contexts.append(prompt)
            continuations.append(vocab.encode(option))
    scores = continuation_log_likelihoods(model, contexts, continuations, block_size)
    correct, offset = [], 0
    for item in items:
        option_scores = scores[offset : offset + len(item.options)]
        offset += len(item.options)
        correct.append(option_scores.index(max(option_scores)) == item.answer_index)
    return correct


@torch.no_grad()
def verbatim_matches(
    model: torch.nn.Module,
    sequences: list[list[int]],
    prefix_tokens: int,
    continuation_tokens: int,
    block_size: int,
) -> list[bool]:
    """Per sequence: does greedy decoding from its first `prefix_tokens` tokens reproduce
    the next `continuation_tokens` exactly? Sequences are decoded together (same length)."""
    if not sequences:
        return []
    device = next(model.parameters()).device
    data = torch.tensor([s[: prefix_tokens + continuation_tokens] for s in sequences])
    tokens = data[:, :prefix_tokens].to(device)  # (N, P)
    for _ in range(continuation_tokens):
        next_token = model(tokens[:, -block_size:])[:, -1, :].argmax(dim=-1)  # (N,)
        tokens = torch.cat([tokens, next_token[:, None]], dim=1)
    generated = tokens[:, prefix_tokens:].cpu()
    return (generated == data[:, prefix_tokens:]).all(dim=1).tolist()


_SIGNED_INT = re.compile(r"^\s*(-?\d+)")


def leading_integer(completion: str) -> int | None:
    """The signed integer a completion starts with (after spaces), if any.

    >>> leading_integer(" -3> "), leading_integer("12>"), leading_integer("x1")
    (-3, 12, None)
    """
    match = _SIGNED_INT.match(completion)
    return int(match.group(1)) if match else None


def normalize_answer(text: str) -> str:
    """An answer as compared: case, surrounding spaces and one trailing full stop ignored.

    >>> normalize_answer(" Zis. ")
    'zis'
    """
    return text.strip().rstrip(".").lower()


def score_arithmetic(
    problems: list[ArithmeticProblem], completions: list[str], held_out: tuple[str, ...]
) -> dict[str, float]:
    """Exact-answer accuracy overall, on seen and held-out problems, and per operation.

    A completion is right when the signed integer it starts with equals the answer
    ("12> " for 5+7 is right; "13>", "", "x" are wrong).
    """
    correct = {
        p.key: leading_integer(c) == p.answer for p, c in zip(problems, completions, strict=True)
    }
    held = set(held_out)
    groups = {
        "arithmetic_all": list(correct),
        "arithmetic_seen": [k for k in correct if k not in held],
        "arithmetic_held_out": [k for k in correct if k in held],
        "arithmetic_add": [k for k in correct if "+" in k],
        "arithmetic_sub": [k for k in correct if "-" in k],
    }
    return {
        f"eval/{name}": sum(correct[k] for k in keys) / len(keys)
        for name, keys in groups.items()
        if keys
    }


def score_facts(facts: list[Fact], completions: list[str]) -> dict[str, float]:
    """Fraction of facts whose completion (to the newline) names the capital.

    Case, surrounding spaces and a trailing full stop are ignored, as in the paper.
    """
    hits = [
        normalize_answer(c) == f.capital.lower() for f, c in zip(facts, completions, strict=True)
    ]
    return {"eval/facts": sum(hits) / len(hits)}
