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

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, field_validator, model_validator

from core.built import Built, MembershipSplit
from core.data.arithmetic import (
    PROBLEM_KEY,
    ArithmeticProblem,
    arithmetic_characters,
    arithmetic_problems,
)
from core.data.canaries import CanarySpec, draw_canaries, planted_lines
from core.data.names import Fact, capital_prior_bits, fact_characters, fictional_facts
from core.data.text import CharVocab
from core.evaluation import score_arithmetic, score_facts
from core.generation import complete_texts
from core.models.transformer import Decoder, DecoderSpec, parameter_count
from core.prepared import Prepared
from core.probes.features import Feature
from core.probes.target import AttributeChoices, Canaries, Facts, SequenceSet
from core.reference_data import ReferenceData, ReservesReferenceData, reference_data_field
from core.registry import register_kind
from core.reporter import Reporter
from core.specs import TrainedSpec, TrainSpec, field_error
from core.training.fit import Trained, run_prepared
from core.training.samplers import TokenStreamSampler

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
# The paper's nanoGPT cut windows from one fixed ordering of the lines; memlab reshuffles
# the lines for each of this many passes so that a line's neighbours are not memorizable.
_SHUFFLED_PASSES = 256


class CapacityTradeoffSpec(ReservesReferenceData, TrainedSpec):
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
    canaries: CanarySpec | None = Field(
        None,
        description="Secret-Sharer canaries planted in the training lines (for `exposure`).",
    )
    block_size: int | None = Field(
        None,
        ge=0,
        le=4096,
        description="Context length; null (or 0) = the paper's (9 arithmetic, 24 otherwise).",
    )
    # Task facts only: the reserved slice is facts 2·n_facts+1 … 3·n_facts of the generator
    # (after the held-out ones); arithmetic has no problem outside the 200 to set aside.
    reference_data: ReferenceData | None = reference_data_field()
    train: TrainSpec = TrainSpec(
        steps=30_000,
        batch_size=576,
        lr=0.01,
        min_lr=1e-4,
        warmup_fraction=2000 / 30_000,  # the paper's 2,000 warmup steps of 30k
        decay_fraction=25_000 / 30_000,  # and decay to min_lr at step 25k
        beta2=0.99,
        weight_decay=0.0,
        grad_clip=1.0,
        eval_every=250,
        checkpoint_every=2500,
    )

    derived_fields: ClassVar[tuple[str, ...]] = ("block_size", "train.batch_size")
    added_fields: ClassVar[frozenset[str]] = frozenset({"reference_data"})
    # What decides the data and its character vocabulary (`reference_refusal`).
    data_fields: ClassVar[frozenset[str]] = frozenset(
        {"task", "n_facts", "facts_seed", "held_out", "canaries", "block_size"}
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
            given = {key: value for key, value in train.items() if key != "batch_size"}
            raw["train"] = {"batch_size": train.get("batch_size") or batch, **given}
        return raw

    # Joint: the one task whose split has two strata (4 sums, and facts on both sides).
    membership_fields: ClassVar[dict[str, Any]] = {"task": "joint", "n_facts": 400}

    smoke_fields: ClassVar[dict[str, Any]] = {
        "task": "facts",
        "n_facts": 8,
        "model": {"n_embd": 8},
        "train": {"steps": 6, "batch_size": 8, "eval_every": 3},
    }

    def context_tokens(self) -> int:
        return self.block_size

    def parameter_count(self) -> int:
        return parameter_count(self.model, self.vocabulary_bound(), self.block_size)

    def vocabulary_bound(self) -> int:
        """At most how many characters the task's vocabulary holds, from the spec alone
        (the estimate never draws the facts): what any line of the task can hold."""
        characters: set[str] = set()
        if self.task in ("arithmetic", "joint"):
            characters |= arithmetic_characters()
        if self.task in ("facts", "joint"):
            characters |= fact_characters()
        if self.canaries is not None:  # the vocabulary spells the raw template too
            characters |= set(self.canaries.template + self.canaries.alphabet)
        return len(characters)

    def dataset_items(self) -> int:
        """Training lines, exactly: the problems not held out, the facts, the canaries."""
        problems = 0
        if self.task in ("arithmetic", "joint"):
            problems = len(arithmetic_problems()) - len(set(self.held_out))
        facts = self.n_facts if self.task in ("facts", "joint") else 0
        canaries = self.canaries.planted_line_count if self.canaries is not None else 0
        return problems + facts + canaries

    def probe_features(self) -> frozenset[Feature]:
        features = {Feature.generation}
        if self.task in ("facts", "joint"):
            features |= {Feature.facts, Feature.held_out}  # the generator's next facts
        elif self.held_out:  # arithmetic keeps out only the problems it names
            features.add(Feature.held_out)
        if self.canaries is not None:
            features.add(Feature.canaries)
        if self.reference_data == "reserve":
            features.add(Feature.disjoint_reference)
        return frozenset(features)

    @model_validator(mode="after")
    def _reference_data_needs_facts(self) -> CapacityTradeoffSpec:
        if self.reference_data is not None and self.task != "facts":
            raise field_error(
                "reference_data",
                f"reference_data needs task 'facts': the {self.task} task's problems are all "
                "200 there are, so none can be set aside for a reference",
            )
        return self

    @field_validator("held_out")
    @classmethod
    def _check_problems(cls, problems: tuple[str, ...]) -> tuple[str, ...]:
        for problem in problems:
            if not PROBLEM_KEY.match(problem):
                raise ValueError(f"held-out problem {problem!r} is not of the form 'a+b' or 'a-b'")
        return problems


@dataclass(frozen=True)
class CapacityTask:
    """The data of one run: training lines, vocabulary and what is evaluated."""

    spec: CapacityTradeoffSpec
    problems: list[ArithmeticProblem]
    facts: list[Fact]  # the training facts
    # The facts of the other run of a target–reference pair (`reference_data`), never
    # trained on here: the vocabulary spells them, so both runs share token ids.
    other_run_facts: list[Fact] = field(default_factory=list)

    @classmethod
    def build(cls, spec: CapacityTradeoffSpec) -> CapacityTask:
        with_math = spec.task in ("arithmetic", "joint")
        with_facts = spec.task in ("facts", "joint")
        problems = arithmetic_problems() if with_math else []
        if spec.reference_data is None:
            facts = fictional_facts(spec.n_facts, spec.facts_seed) if with_facts else []
            return cls(spec, problems, facts)
        # Facts 1…n are the target's, n+1…2n held out (non-members), 2n+1…3n the reserve.
        n = spec.n_facts
        drawn = fictional_facts(3 * n, spec.facts_seed)
        targets, reserved = drawn[:n], drawn[2 * n :]
        if spec.reference_data == "train_on":
            return cls(spec, problems, reserved, other_run_facts=targets)
        return cls(spec, problems, targets, other_run_facts=reserved)

    @property
    def training_lines(self) -> list[str]:
        """The lines a model of this spec trains on: seen problems, facts, planted canaries."""
        held_out = set(self.spec.held_out)
        math_lines = [p.line for p in self.problems if p.key not in held_out]
        canary_lines = planted_lines(self.spec.canaries) if self.spec.canaries else []
        return math_lines + [f.line for f in self.facts] + canary_lines

    @property
    def vocab(self) -> CharVocab:
        # Built from every line, held-out ones included, so a held-out answer is spellable.
        texts = [p.line for p in self.problems] + [f.line for f in self.facts]
        texts += [f.line for f in self.other_run_facts]
        if self.spec.canaries:  # every candidate secret must be spellable, planted or not
            texts += [self.spec.canaries.template, self.spec.canaries.alphabet]
        return CharVocab.from_texts(texts)

    @property
    def held_out_problems(self) -> list[ArithmeticProblem]:
        held_out = set(self.spec.held_out)
        return [p for p in self.problems if p.key in held_out]

    def held_out_facts(self) -> list[Fact]:
        """Up to `n_facts` more facts from the same generator, never trained on: the
        generator continued past the training facts. Facts that need a character the
        training vocabulary lacks are skipped (the model has no embedding for it)."""
        if not self.facts:
            return []
        more = fictional_facts(2 * self.spec.n_facts, self.spec.facts_seed)[self.spec.n_facts :]
        spellable = set(self.vocab.chars)
        return [f for f in more if set(f.line) <= spellable]

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


def assemble(spec: CapacityTradeoffSpec, task: CapacityTask) -> Built:
    """The run's parts from its task. Members: the training problems and facts (canaries
    aside); non-members: the held-out problems and the generator's next facts, each item
    labelled with its task, so that a membership attack compares as many sums and as many
    facts on both sides. Lines longer than the context keep their end."""
    vocab, block = task.vocab, spec.block_size
    held_out = task.held_out_problems
    seen = [p for p in task.problems if p not in held_out]
    unseen_facts = task.held_out_facts()
    has_non_members = bool(held_out or unseen_facts)

    def make_model() -> Decoder:
        torch.manual_seed(spec.seed)
        return Decoder(spec.model, vocab_size=vocab.size, block_size=block)

    return Built(
        make_model=make_model,
        training_items=SequenceSet.from_texts(task.training_lines, vocab.encode, block),
        sample_batch=TokenStreamSampler.from_lines(
            task.training_lines,
            vocab.encode,
            block,
            spec.train.batch_size,
            passes=_SHUFFLED_PASSES,
            seed=spec.seed,
        ),
        evaluate=lambda model: task.evaluate(model)[0],
        membership=MembershipSplit(
            members=SequenceSet.from_texts(_lines(seen, task.facts), vocab.encode, block),
            non_members=(
                SequenceSet.from_texts(_lines(held_out, unseen_facts), vocab.encode, block)
                if has_non_members
                else None
            ),
            rule="members: training problems and facts; non-members: held-out problems and "
            "the generator's next facts (n_facts+1 … 2·n_facts); attacks compare as many "
            "of each task on both sides",
            member_answers=_answer_items(task, seen, task.facts),
            non_member_answers=(
                _answer_items(task, held_out, unseen_facts) if has_non_members else None
            ),
            member_strata=_tasks(seen, task.facts),
            non_member_strata=_tasks(held_out, unseen_facts),
            canaries=_canary_set(spec.canaries, task) if spec.canaries else None,
            facts=_facts_set(task) if task.facts else None,
        ),
        vocab_size=vocab.size,
        vocabulary=vocab.chars,
        max_length=block,
    )


def build(spec: CapacityTradeoffSpec) -> Built:
    return assemble(spec, CapacityTask.build(spec))


def prepare(spec: CapacityTradeoffSpec) -> Prepared:
    """The run's parts from its task, and its report: per-task accuracy, seen vs held-out."""
    task = CapacityTask.build(spec)

    def report(trained: Trained, reporter: Reporter) -> dict[str, Any]:
        return _report(spec, task, trained)

    return Prepared(assemble(spec, task), report)


@register_kind(
    CapacityTradeoffSpec,
    "Too Big to Think: small transformers extrapolate arithmetic or memorize facts, not both.",
    build=build,
    prepare=prepare,
)
def run(spec: CapacityTradeoffSpec, reporter: Reporter) -> dict[str, Any]:
    """Train one model on one task and report per-task accuracy, seen vs held-out."""
    return run_prepared(spec, prepare(spec), reporter)


def _report(spec: CapacityTradeoffSpec, task: CapacityTask, trained: Trained) -> dict[str, Any]:
    outcome = trained.outcome
    final_metrics, held_out_answers = task.evaluate(trained.model)
    best = outcome.best_eval("eval/score")
    return {
        "task": spec.task,
        "n_parameters": trained.n_parameters,
        "n_training_lines": len(task.training_lines),
        "final": _strip_prefix(final_metrics),
        "best": {"step": best[0], **_strip_prefix(best[1])} if best else None,
        "held_out_answers": held_out_answers,
        "held_out_split": {
            "problems": [p.key for p in task.held_out_problems],
            "facts": len(task.held_out_facts()),
            "facts_rule": "facts n_facts+1 … 2·n_facts of the same generator (spellable ones)",
        },
        "canaries": [c.__dict__ for c in draw_canaries(spec.canaries)] if spec.canaries else None,
        "device": str(trained.device),
        "training": outcome.as_dict(),
    }


def _tasks(problems: list[ArithmeticProblem], facts: list[Fact]) -> tuple[str, ...]:
    """Each line's task, in the order of `_lines`: the strata of a membership split."""
    return ("sum",) * len(problems) + ("fact",) * len(facts)


def _lines(problems: list[ArithmeticProblem], facts: list[Fact]) -> list[str]:
    return [p.line for p in problems] + [f.line for f in facts]


def _strip_prefix(metrics: dict[str, float]) -> dict[str, float]:
    return {key.removeprefix("eval/"): value for key, value in metrics.items()}


def _answer_items(
    task: CapacityTask, problems: list[ArithmeticProblem], facts: list[Fact]
) -> SequenceSet:
    """Lines scored on their answer only: a sum's result with its `>`, a fact's capital
    with the space that ends it."""
    lines = [p.line.rstrip() for p in problems] + [f.line.rstrip("\n") for f in facts]
    starts = [len(p.prompt) for p in problems] + [len(f.prompt) for f in facts]
    return SequenceSet.from_texts(lines, task.vocab.encode, task.spec.block_size, starts)


def _facts_set(task: CapacityTask) -> Facts:
    """Each training fact, scored on its capital and the space that ends it, with the
    capital's surprisal under the generator, and the capitals the fact could have had
    (for the mapping bits): names are drawn without replacement, so fact i's capital is
    one of the capitals of facts i, i+1, …"""
    items = _answer_items(task, [], task.facts)
    prompts = [fact.prompt for fact in task.facts]

    def pose(facts: Sequence[int], capitals: Sequence[str]) -> SequenceSet:
        texts = [prompts[f] + capital + " " for f, capital in zip(facts, capitals, strict=True)]
        starts = [len(prompts[f]) for f in facts]
        return SequenceSet.from_texts(texts, task.vocab.encode, task.spec.block_size, starts)

    choices = AttributeChoices(tuple(f.capital for f in task.facts), True, pose)
    prior = torch.tensor(capital_prior_bits(task.facts), dtype=torch.float64)
    return Facts(items, prior, choices)


def _canary_set(spec: CanarySpec, task: CapacityTask) -> Canaries:
    """The planted canaries and controls, and every candidate secret, scored on the secret."""
    encode, block = task.vocab.encode, task.spec.block_size
    drawn = draw_canaries(spec)
    secret_start = spec.secret_offset

    def candidates(indices: torch.Tensor) -> SequenceSet:
        texts = [spec.text(int(i)) for i in indices]
        return SequenceSet.from_texts(texts, encode, block, [secret_start] * len(texts))

    secrets = SequenceSet.from_texts(
        [c.text for c in drawn],
        encode,
        block,
        [secret_start] * len(drawn),
        [c.insertions for c in drawn],
    )
    insertions = torch.tensor([c.insertions for c in drawn])
    indices = torch.tensor([c.index for c in drawn])
    return Canaries(secrets, insertions, indices, spec.space_size, candidates)
