"""`capacity_tradeoff`: small transformers on arithmetic (generalize) vs facts (memorize).

Reproduces "Too Big to Think: Capacity, Memorization, and Generalization in Pre-Trained
Transformers". Character-level nanoGPT-style decoders are trained from scratch on
  - arithmetic: lines `<a+b=c>` / `<a-b=c>`, a, b ∈ 0..9, padded with spaces to 8
    characters plus a newline (9 characters); 5+7, 7+5, 5-7 and 7-5 are held out,
    leaving 196 training lines;
  - facts: 50 lines `Capital of X is Y ` (trailing space, then newline). The paper used
    real countries; memlab generates fictional ones (`facts_seed`) so no fact can be
    known from anywhere but this training set;
  - joint: both sets in one stream.
Example lines: `<5+5=10> \\n`, `<1-4=-3> \\n`, `Capital of Velmora is Drask \\n`.

The paper's finding: the 1-layer n_embd=14 model extrapolates to the held-out sums but
memorizes few facts (0.082); n_embd 28 and 56 memorize every fact but miss exactly the
held-out sums (0.978 = 89/91); trained jointly, no size extrapolates.

Defaults follow the paper's public code: block 9 and batch 882 for arithmetic, block 24
and batch 576 otherwise; lr 0.01 with 2000 warmup steps, cosine decay to 1e-4 at step
25k, held to 30k; β₂ 0.99, no weight decay, no bias, no dropout, clip 1.0. Evaluation
prompts `<a+b=` and `Capital of X is `; the paper sampled at temperature 0.01 (top-k 10),
memlab decodes greedily, which that temperature approximates. Arithmetic is scored on the
full 10×10 grid per operation (the paper's script skipped b = 0 for a ≥ 1, so its
0.978 = 89/91 corresponds to memlab's 0.98 = 98/100: held-out pairs wrong, the rest right).
The paper reported the best of evaluations every 250 steps; memlab reports the final
model and, separately, that best evaluation.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
from pydantic import Field, field_validator

from core.data.text import CharVocab, LineStreamSampler
from core.generation import complete_texts
from core.models.transformer import Decoder, DecoderSpec, parameter_count
from core.registry import register_kind
from core.reporter import Reporter
from core.specs import ExperimentSpec, ResourceEstimate, TrainSpec, spec_hash
from core.training.device import resolve_device
from core.training.trainer import Trainer

Task = Literal["arithmetic", "facts", "joint"]

# Paper defaults per task: (block_size, batch_size).
_TASK_SHAPES: dict[str, tuple[int, int]] = {
    "arithmetic": (9, 882),
    "facts": (24, 576),
    "joint": (24, 576),
}
# The paper's model sizes. "mlt" is its large GPU model (6 layers, 6 heads, width 384,
# MLP ×4, dropout 0.2) with its own optimiser settings (lr 1e-5 → 1e-6, weight decay 0.1).
Size = Literal["n14", "n28", "n56", "mlt"]
_SIZE_PRESETS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "n14": ({"n_layer": 1, "n_head": 1, "n_embd": 14, "mlp_ratio": 1.0}, {}),
    "n28": ({"n_layer": 1, "n_head": 1, "n_embd": 28, "mlp_ratio": 1.0}, {}),
    "n56": ({"n_layer": 1, "n_head": 1, "n_embd": 56, "mlp_ratio": 1.0}, {}),
    "mlt": (
        {"n_layer": 6, "n_head": 6, "n_embd": 384, "mlp_ratio": 4.0, "dropout": 0.2},
        {"lr": 1e-5, "min_lr": 1e-6, "weight_decay": 0.1, "device": "cuda"},
    ),
}
_PROBLEM = re.compile(r"^[0-9][+-][0-9]$")
_SIGNED_INT = re.compile(r"^\s*(-?\d+)")
_LINE_WIDTH = 8  # characters before the newline in an arithmetic line
# The paper's nanoGPT cut windows from one fixed ordering of the lines; memlab reshuffles
# the lines for each of this many passes so that a line's neighbours are not memorizable.
_SHUFFLED_PASSES = 256


class CapacityTradeoffSpec(ExperimentSpec):
    """One model size trained on one task; sweep `model.n_embd` × `task` for the paper's table."""

    kind: Literal["capacity_tradeoff"] = "capacity_tradeoff"
    task: Task = Field("arithmetic", description="Which training set: arithmetic, facts or joint.")
    size: Size | None = Field(
        None,
        description="A paper model size; sets `model` (and, for mlt, `train`) defaults, "
        "which fields given explicitly still override.",
    )
    model: DecoderSpec = DecoderSpec(
        n_layer=1, n_head=1, n_embd=14, mlp_ratio=1.0, dropout=0.0, bias=False
    )
    held_out: tuple[str, ...] = Field(
        ("5+7", "7+5", "5-7", "7-5"),
        description="Arithmetic problems 'a+b' or 'a-b' kept out of training.",
    )
    n_facts: int = Field(50, ge=1, le=5000, description="Fictional country/capital facts.")
    facts_seed: int = Field(
        0, ge=0, description="Seed of the fictional names (data, not training)."
    )
    block_size: int = Field(
        0,
        ge=0,
        le=4096,
        description="Context length; 0 = the paper's (9 arithmetic, 24 otherwise).",
    )
    train: TrainSpec = TrainSpec(
        steps=30_000,
        batch_size=576,
        lr=0.01,
        min_lr=1e-4,
        warmup_steps=2000,
        decay_steps=25_000,
        beta2=0.99,
        weight_decay=0.0,
        grad_clip=1.0,
        eval_every=250,
        checkpoint_every=2500,
    )

    @classmethod
    def fill_defaults(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """block_size and train.batch_size default to the paper's value for the task."""
        task = raw.get("task", "arithmetic")
        if not isinstance(task, str) or task not in _TASK_SHAPES:
            return raw  # the Literal check reports the bad task
        block, batch = _TASK_SHAPES[task]
        size = raw.get("size")
        if isinstance(size, str) and size in _SIZE_PRESETS:
            model_preset, train_preset = _SIZE_PRESETS[size]
            if isinstance(raw.get("model", {}), dict):
                raw["model"] = {**model_preset, **raw.get("model", {})}
            if isinstance(raw.get("train", {}), dict):
                raw["train"] = {**train_preset, **raw.get("train", {})}
        if not raw.get("block_size"):
            raw["block_size"] = block
        train = raw.get("train", {})
        if isinstance(train, dict):  # a copy: the caller's dict is left as it was
            raw["train"] = {"batch_size": batch, **train}
        return raw

    def resource_estimate(self) -> ResourceEstimate:
        task = CapacityTask.build(self)
        return replace(
            super().resource_estimate(),
            parameters=parameter_count(self.model, task.vocab.size, self.block_size),
            dataset_items=len(task.training_lines),
        )

    @field_validator("held_out")
    @classmethod
    def _check_problems(cls, problems: tuple[str, ...]) -> tuple[str, ...]:
        for problem in problems:
            if not _PROBLEM.match(problem):
                raise ValueError(f"held-out problem {problem!r} is not of the form 'a+b' or 'a-b'")
        return problems


@dataclass(frozen=True)
class ArithmeticProblem:
    a: int
    op: str
    b: int

    @property
    def answer(self) -> int:
        return self.a + self.b if self.op == "+" else self.a - self.b

    @property
    def key(self) -> str:
        return f"{self.a}{self.op}{self.b}"

    @property
    def prompt(self) -> str:
        return f"<{self.key}="

    @property
    def line(self) -> str:
        return f"{self.prompt}{self.answer}>".ljust(_LINE_WIDTH) + "\n"


@dataclass(frozen=True)
class Fact:
    country: str
    capital: str

    @property
    def prompt(self) -> str:
        return f"Capital of {self.country} is "

    @property
    def line(self) -> str:
        return f"{self.prompt}{self.capital} \n"


def arithmetic_problems() -> list[ArithmeticProblem]:
    """All 200 problems: a, b ∈ 0..9 for + and −."""
    return [ArithmeticProblem(a, op, b) for op in "+-" for a in range(10) for b in range(10)]


_ONSETS = ["b", "br", "d", "dr", "f", "g", "k", "kr", "l", "m", "n", "p", "r", "s", "t", "v", "z"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ei", "ou"]
_CODAS = ["", "", "n", "r", "s", "l", "th", "sk", "nd"]


def _fictional_name(rng: random.Random, syllables: int) -> str:
    parts = [
        rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables)
    ]
    return "".join(parts).capitalize()


def fictional_facts(count: int, seed: int) -> list[Fact]:
    """`count` facts with distinct fictional country and capital names, fixed by `seed`."""
    rng = random.Random(seed)
    used: set[str] = set()

    def fresh(syllables: tuple[int, int]) -> str:
        while True:
            name = _fictional_name(rng, rng.randint(*syllables))
            if name not in used:
                used.add(name)
                return name

    return [Fact(fresh((2, 3)), fresh((1, 2))) for _ in range(count)]


def _parse_integer(completion: str) -> int | None:
    match = _SIGNED_INT.match(completion)
    return int(match.group(1)) if match else None


def _normalize_capital(text: str) -> str:
    return text.strip().rstrip(".").lower()


@dataclass(frozen=True)
class CapacityTask:
    """The data of one run: training lines, vocabulary and what is evaluated."""

    spec: CapacityTradeoffSpec
    problems: list[ArithmeticProblem]
    facts: list[Fact]

    @classmethod
    def build(cls, spec: CapacityTradeoffSpec) -> CapacityTask:
        with_math = spec.task in ("arithmetic", "joint")
        with_facts = spec.task in ("facts", "joint")
        problems = arithmetic_problems() if with_math else []
        facts = fictional_facts(spec.n_facts, spec.facts_seed) if with_facts else []
        return cls(spec, problems, facts)

    @property
    def training_lines(self) -> list[str]:
        held_out = set(self.spec.held_out)
        math_lines = [p.line for p in self.problems if p.key not in held_out]
        return math_lines + [f.line for f in self.facts]

    @property
    def vocab(self) -> CharVocab:
        # Built from every line, held-out ones included, so a held-out answer is spellable.
        return CharVocab.from_texts([p.line for p in self.problems] + [f.line for f in self.facts])

    def evaluate(self, model: Decoder) -> tuple[dict[str, float], dict[str, str]]:
        """Accuracy metrics and, for held-out problems, what the model answered."""
        metrics: dict[str, float] = {}
        answers: dict[str, str] = {}
        if self.problems:
            completions = complete_texts(
                model, self.vocab, [p.prompt for p in self.problems], max_new_tokens=4
            )
            metrics |= score_arithmetic(self.problems, completions, self.spec.held_out)
            held_out = set(self.spec.held_out)
            answers = {
                p.key: c.split(">")[0]
                for p, c in zip(self.problems, completions, strict=True)
                if p.key in held_out
            }
        if self.facts:
            completions = complete_texts(
                model,
                self.vocab,
                [f.prompt for f in self.facts],
                max_new_tokens=20,
                stop_char="\n",
            )
            metrics |= score_facts(self.facts, completions)
        scored = [metrics[k] for k in ("eval/arithmetic_all", "eval/facts") if k in metrics]
        metrics["eval/score"] = sum(scored) / len(scored)
        return metrics, answers


def score_arithmetic(
    problems: list[ArithmeticProblem], completions: list[str], held_out: tuple[str, ...]
) -> dict[str, float]:
    """Exact-answer accuracy overall, on seen and held-out problems, and per operation.

    A completion is right when the signed integer it starts with equals the answer
    ("12> " for 5+7 is right; "13>", "", "x" are wrong).
    """
    correct = {
        p.key: _parse_integer(c) == p.answer for p, c in zip(problems, completions, strict=True)
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
        _normalize_capital(c) == f.capital.lower() for f, c in zip(facts, completions, strict=True)
    ]
    return {"eval/facts": sum(hits) / len(hits)}


@register_kind(
    CapacityTradeoffSpec,
    "Too Big to Think: small transformers extrapolate arithmetic or memorize facts, not both.",
)
def run(spec: CapacityTradeoffSpec, reporter: Reporter) -> dict[str, Any]:
    """Train one model on one task and report per-task accuracy, seen vs held-out."""
    device = resolve_device(spec.train.device)
    task = CapacityTask.build(spec)
    torch.manual_seed(spec.seed)
    model = Decoder(spec.model, vocab_size=task.vocab.size, block_size=spec.block_size)
    sampler = LineStreamSampler(
        task.training_lines,
        task.vocab,
        spec.block_size,
        spec.train.batch_size,
        passes=_SHUFFLED_PASSES,
        seed=spec.seed,
    )
    trainer = Trainer(
        model,
        spec.train,
        sampler,
        reporter,
        seed=spec.seed,
        device=device,
        evaluate=lambda _: task.evaluate(model)[0],
        checkpoint_state={"spec": spec.model_dump(mode="json"), "spec_hash": spec_hash(spec)},
    )
    outcome = trainer.fit()
    final_metrics, held_out_answers = task.evaluate(model)
    best = outcome.best_eval("eval/score")
    return {
        "task": spec.task,
        "n_parameters": model.num_parameters(),
        "n_training_lines": len(task.training_lines),
        "final": _strip_prefix(final_metrics),
        "best": {"step": best[0], **_strip_prefix(best[1])} if best else None,
        "held_out_answers": held_out_answers,
        "device": str(device),
        "training": outcome.as_dict(),
    }


def _strip_prefix(metrics: dict[str, float]) -> dict[str, float]:
    return {key.removeprefix("eval/"): value for key, value in metrics.items()}
