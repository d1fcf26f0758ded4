"""`schema_linking`: rote supervised training against rule-rewarded RL (GRPO) for naming
the tables and columns a question needs, on schemas never seen in training.

Reproduces the comparison of "Schema-R1: A reasoning training approach for schema linking
in Text-to-SQL Task" (Wen, Pan & Sun, arXiv 2506.11986): Qwen2.5-1.5B fine-tuned on
Spider to answer `###Tables: …;###Columns: …;` (rote SFT), against an SFT cold start
followed by GRPO with a rule reward. On Spider dev (held-out databases) GRPO raised
filter accuracy (gold ⊆ predicted) from 0.750 to 0.899 for tables and from 0.424 to
0.688 for columns (`PAPER_TABLE`). The reward makes supersets cheap: a false positive
costs 4 (tables) or 3 (columns) times its share of the prediction, while each gold item
found earns 10 or 8 over the gold count, so the paper's gain may come from predicting
more. memlab reports precision and the mean predicted set size to show whether it does.

memlab's analogue (its choices, not the paper's):
  - data: synthetic schemas (`core.data.schemas`: 2–4 tables from a 24-entity lexicon,
    2–3 attribute columns, an `id`, foreign keys) and templated questions that name
    tables and columns through synonyms; held-out schemas are fresh draws of the same
    generator (so the same lexicon: they test new combinations, not new words; there is
    no option yet to hold out names, which is where a pointer policy should shine);
  - policy: a 2-layer, width-64 decoder whose answer tokens point at the prompt's slot
    tokens (`core.models.pointer_policy`), decoding within the answer's alphabet, up to
    `max_answer_tokens` tokens: by default the longest answer naming every item of the
    largest schema, so an inflated answer is never cut off before its final `;`;
  - stage 1, rote SFT: next-token loss on the answer only, through the shared Trainer, in
    the checkpoint subfolder `sft/`; `cold_start_examples` trains it on the first K
    training questions only (the paper's cold start used 175 reasoning traces; memlab
    has no reasoning, so its cold start is a small SFT set). The default SFT budget is
    moderate (600 steps), so SFT is not at its ceiling on held-out schemas, as the
    paper's was not;
  - stage 2, GRPO (`core.training.grpo`) through the Trainer with its own objective, in
    the run's checkpoint folder (the probe target is the final policy), on prompts drawn
    from all training questions (or, with `grpo.prompt_pool` K, from the first K only,
    to see whether GRPO learns where it meets prompts again): 8 answers per prompt
    sampled at temperature 1, reward 0.5 × the paper's `accuracy_reward2` + 0.5 × a
    format reward (1 when the answer
    parses as `###Tables: …;###Columns: …;`; the paper's weights, its format check being
    for `<think>` tags; its tag-count and length rewards are dropped, there being no
    reasoning text), group-normalised advantages, clip ε = 0.2, KL β = 0.04 to the
    frozen SFT policy (the TRL default the paper's config inherited). One gradient step
    per sampled batch. `grpo: null` trains SFT only. SFT+GRPO takes GRPO's steps on top
    of SFT's, so "SFT alone" has had fewer updates; the reproduction's sweep adds an
    SFT-only control given as many steps (`grpo: null`, `train.steps` 750).
Metrics, greedy decoding (the paper sampled at temperature 0.4), on held-out questions,
on the questions SFT trained on and (with GRPO) on GRPO's prompt pool, each after SFT and
after GRPO, for tables and columns: exact, filter, recall, precision (an empty
prediction has precision 0, and `empty_rate` counts them), mean predicted and gold set
size; mean reward. Measured numbers are in the docs
(docs/reproductions.md), not here.

`build(spec)` rebuilds the data and the policy at initialisation from the spec alone; the
probe target is the final (SFT+GRPO) policy, with SFT's examples (the questions trained
on with their gold answers) as members and held-out questions as non-members. With a
cold start, the other training questions, seen by GRPO as prompts only, are neither.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import time
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, model_validator

from core.built import Built, MembershipSplit
from core.data.schema_answers import (
    MAX_ACCURACY_REWARD,
    MIN_ACCURACY_REWARD,
    RewardWeights,
    answer_metrics,
)
from core.data.schema_prompts import (
    END,
    PAD,
    EncodedQuestions,
    PromptLayout,
    SchemaVocab,
    encode_questions,
    full_schema_answer_length,
    render,
)
from core.data.schemas import ENTITIES, SchemaShape, generate_questions
from core.models.pointer_policy import PointerPolicy, pointer_parameter_count
from core.models.sequence_model import SequenceModelSpec
from core.probes.features import Feature
from core.probes.target import SequenceSet
from core.registry import register_kind
from core.reporter import Reporter
from core.schema_evaluation import decode_answers
from core.spec_model import SpecModel, field_error
from core.specs import ResourceEstimate, TrainedSpec, TrainSpec
from core.training.device import resolve_device
from core.training.fit import train_built
from core.training.grpo import GRPOObjective, GRPOSettings, PromptSampler
from core.training.samplers import ExampleSampler
from core.training.scoped_reporter import ScopedReporter
from core.training.trainer import IGNORE_INDEX, Trainer, spec_checkpoint_state

# The longest gold answer the templates write: 3 tables and 6 columns in slots, with
# separators, both marks, terminators and <end>.
LONGEST_GOLD_ANSWER = 21

# The paper's held-out (Spider dev) numbers, from the repository's evaluation notebooks.
PAPER_TABLE: dict[str, dict[str, dict[str, float]]] = {
    "rote_sft": {
        "tables": {"exact": 0.648, "filter": 0.750, "recall": 0.830},
        "columns": {"exact": 0.312, "filter": 0.424, "recall": 0.594},
    },
    "cold_start_sft": {
        "tables": {"exact": 0.567, "filter": 0.704, "recall": 0.791},
        "columns": {"exact": 0.194, "filter": 0.351, "recall": 0.545},
    },
    "cold_start_grpo": {
        "tables": {"exact": 0.732, "filter": 0.899, "recall": 0.944},
        "columns": {"exact": 0.382, "filter": 0.688, "recall": 0.818},
    },
}


class GRPOSpec(SpecModel):
    """Stage 2: GRPO from the SFT policy, with the paper's reward."""

    group_size: int = Field(8, ge=2, le=64, description="Answers G sampled per prompt.")
    clip: float = Field(0.2, gt=0, le=1, description="Clip ε of the policy ratio.")
    beta: float = Field(
        0.04, ge=0, le=10, description="Weight of the KL to the frozen SFT policy (0 = none)."
    )
    temperature: float = Field(1.0, gt=0, le=5, description="Sampling temperature.")
    accuracy_weight: float = Field(
        0.5, ge=0, le=10, description="Weight of the paper's accuracy_reward2 (−10 to +18)."
    )
    format_weight: float = Field(
        0.5, ge=0, le=10, description="Weight of the format reward (0 or 1)."
    )
    prompt_pool: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="GRPO draws its prompts from the first K training questions only (null "
        "= all of them). With all 1,200 default questions each prompt is sampled about once "
        "in GRPO's budget; a small pool shows it again and again, which separates 'GRPO "
        "learns on the prompts it sees repeatedly' from 'GRPO generalises across prompts'. "
        "At most the number of training questions.",
    )
    train: TrainSpec = Field(
        TrainSpec(
            steps=150,
            batch_size=8,
            lr=1e-4,
            min_lr=1e-4,
            schedule="constant",
            warmup_fraction=0.0,
            grad_clip=1.0,
            eval_every=50,
            checkpoint_every=50,
        ),
        description="Stage 2's optimisation; batch_size is prompts per step (each sampled "
        "group_size times). Its device must equal stage 1's (`train.device`): one run, one "
        "device.",
    )

    # Added after the kind's first specs were stored: left out of the hash while null.
    added_fields: ClassVar[frozenset[str]] = frozenset({"prompt_pool"})

    @model_validator(mode="after")
    def _some_reward(self) -> GRPOSpec:
        if self.accuracy_weight == 0 and self.format_weight == 0:
            raise field_error("accuracy_weight", "accuracy_weight and format_weight are both 0")
        return self

    def reward_weights(self) -> RewardWeights:
        return RewardWeights(self.accuracy_weight, self.format_weight)

    def pool_size(self, train_questions: int) -> int:
        """Prompts GRPO draws from: the first `prompt_pool` training questions, or all."""
        return train_questions if self.prompt_pool is None else self.prompt_pool


class SchemaLinkingSpec(TrainedSpec):
    """One policy: SFT on training schemas, then (unless `grpo` is null) GRPO."""

    kind: Literal["schema_linking"] = "schema_linking"
    n_train_schemas: int = Field(150, ge=1, le=100_000, description="Training schemas.")
    n_held_out_schemas: int = Field(
        40, ge=1, le=100_000, description="Held-out schemas (evaluation, non-members)."
    )
    questions_per_schema: int = Field(
        8,
        ge=1,
        le=1000,
        description="Templated questions asked of each schema (training and held-out alike).",
    )
    min_tables: int = Field(2, ge=1, le=8, description="Fewest tables in a schema.")
    max_tables: int = Field(4, ge=1, le=8, description="Most tables in a schema.")
    min_attributes: int = Field(2, ge=1, le=8, description="Fewest attribute columns a table.")
    max_attributes: int = Field(3, ge=1, le=8, description="Most attribute columns a table.")
    foreign_key_probability: float = Field(
        0.8, ge=0, le=1, description="Chance a table has a foreign key to an earlier one."
    )
    cold_start_examples: int | None = Field(
        None, ge=1, description="SFT on the first K training questions only (null = all)."
    )
    max_answer_tokens: int | None = Field(
        None,
        ge=LONGEST_GOLD_ANSWER,
        le=256,
        description="Answer tokens decoded at most; null = the longest answer naming every "
        "item of the largest schema once (2 · items + 3), so that a superset is never cut "
        "off before its final ';' (which would score it as no columns). A value below that "
        "is refused.",
    )
    eval_train_questions: int = Field(
        320,
        ge=1,
        le=100_000,
        description="SFT's training questions scored for the memorization view (the first ones).",
    )
    model: SequenceModelSpec = SequenceModelSpec(
        n_layer=2,
        width=64,
        mixer={"type": "attention", "n_head": 2},
        positions="learned",
        tie_embeddings=False,
    )
    train: TrainSpec = TrainSpec(
        steps=600,
        batch_size=32,
        lr=2e-3,
        min_lr=2e-4,
        schedule="cosine",
        warmup_fraction=0.05,
        eval_every=600,
        checkpoint_every=300,
    )
    grpo: GRPOSpec | None = GRPOSpec()

    membership_fields: ClassVar[dict[str, Any]] = {"n_held_out_schemas": 40}
    smoke_fields: ClassVar[dict[str, Any]] = {
        "n_train_schemas": 6,
        "n_held_out_schemas": 3,
        "questions_per_schema": 4,
        "eval_train_questions": 8,
        "model": {"width": 16, "n_layer": 1},
        "train": {"steps": 5, "batch_size": 8, "eval_every": 5, "checkpoint_every": 5},
        "grpo": {
            "group_size": 2,
            "train": {"steps": 3, "batch_size": 2, "eval_every": 3, "checkpoint_every": 3},
        },
    }

    @model_validator(mode="after")
    def _consistent(self) -> SchemaLinkingSpec:
        if self.min_tables > self.max_tables:
            raise field_error("min_tables", f"min_tables exceeds max_tables ({self.max_tables})")
        if self.max_tables > len(ENTITIES):
            raise field_error("max_tables", f"the lexicon has {len(ENTITIES)} entities")
        if self.min_attributes > self.max_attributes:
            raise field_error(
                "min_attributes", f"min_attributes exceeds max_attributes ({self.max_attributes})"
            )
        questions = self.n_train_schemas * self.questions_per_schema
        if self.cold_start_examples is not None and self.cold_start_examples > questions:
            raise field_error(
                "cold_start_examples",
                f"cold_start_examples exceeds the {questions} training questions",
            )
        if self.grpo is not None and (self.grpo.prompt_pool or 0) > questions:
            raise field_error(
                ("grpo", "prompt_pool"),
                f"grpo.prompt_pool {self.grpo.prompt_pool} exceeds the {questions} training "
                "questions (n_train_schemas × questions_per_schema): use at most that, or null",
            )
        full = full_schema_answer_length(self.shape())
        if self.max_answer_tokens is not None and self.max_answer_tokens < full:
            raise field_error(
                "max_answer_tokens",
                f"max_answer_tokens {self.max_answer_tokens} would cut off an answer naming "
                f"every item of the largest schema ({full} tokens): use at least {full}, or "
                "null",
            )
        if self.grpo is not None and self.grpo.train.device != self.train.device:
            raise field_error(
                ("grpo", "train", "device"),
                f"both stages train one policy on one device: set grpo.train.device to "
                f"train.device ({self.train.device!r})",
            )
        return self

    def shape(self) -> SchemaShape:
        return SchemaShape(
            self.min_tables,
            self.max_tables,
            self.min_attributes,
            self.max_attributes,
            self.foreign_key_probability,
        )

    def answer_tokens(self) -> int:
        """Answer tokens decoded at most: `max_answer_tokens`, or the full-schema length."""
        if self.max_answer_tokens is not None:
            return self.max_answer_tokens
        return full_schema_answer_length(self.shape())

    def layout(self) -> PromptLayout:
        return PromptLayout.for_shape(self.shape(), self.answer_tokens())

    def context_tokens(self) -> int:
        return self.layout().context

    def parameter_count(self) -> int:
        vocab = SchemaVocab.for_shape(self.shape())
        return pointer_parameter_count(self.model, vocab.size, self.context_tokens(), vocab.n_slots)

    def dataset_items(self) -> int:
        return (self.n_train_schemas + self.n_held_out_schemas) * self.questions_per_schema

    def sft_examples(self) -> int:
        """Training questions SFT trains on: the first `cold_start_examples`, or all."""
        questions = self.train_questions()
        return questions if self.cold_start_examples is None else self.cold_start_examples

    def train_questions(self) -> int:
        return self.n_train_schemas * self.questions_per_schema

    def grpo_prompts(self) -> int:
        """Training questions GRPO draws its prompts from (the first ones); 0 without GRPO."""
        return self.grpo.pool_size(self.train_questions()) if self.grpo is not None else 0

    def grpo_steps(self) -> int:
        return self.grpo.train.steps if self.grpo is not None else 0

    def training_steps(self) -> int:
        """Both stages' steps: SFT's, then GRPO's."""
        return self.train.steps + self.grpo_steps()

    def reward_weights(self) -> RewardWeights:
        """GRPO's reward weights (the paper's, when GRPO is off: the reported reward)."""
        return self.grpo.reward_weights() if self.grpo is not None else RewardWeights()

    def resource_estimate(self) -> ResourceEstimate:
        """Both stages' steps; the larger of an SFT batch and a GRPO batch of answers."""
        estimate = super().resource_estimate()
        grpo_batch = self.grpo.train.batch_size * self.grpo.group_size if self.grpo else 0
        return replace(estimate, batch_size=max(self.train.batch_size, grpo_batch))

    def probe_features(self) -> frozenset[Feature]:
        return frozenset({Feature.held_out})


@dataclass(frozen=True)
class SchemaLinkingData:
    """A run's questions: training (the first `sft_examples` are SFT's and the members;
    the first `grpo_prompts()` of the spec are GRPO's prompts) and held-out
    (non-members), as tensors."""

    vocab: SchemaVocab
    layout: PromptLayout
    train: EncodedQuestions
    held_out: EncodedQuestions
    sft_examples: int

    def sft(self) -> EncodedQuestions:
        """The questions SFT trains on with their gold answers."""
        return self.train.subset(list(range(self.sft_examples)))

    def digest(self) -> str:
        data = {"train": self.train.texts, "held_out": self.held_out.texts}
        return hashlib.sha256(json.dumps(data, separators=(",", ":")).encode()).hexdigest()


def _stream(seed: int, name: str) -> random.Random:
    """A generator of its own per use and split, so that changing one split's size leaves
    the other's questions and slot numbers as they were."""
    return random.Random(f"{seed}:{name}")


def build_dataset(spec: SchemaLinkingSpec) -> SchemaLinkingData:
    """Training and held-out questions, a pure function of the spec (`seed`). A held-out
    question identical to a training one (same schema, question and slots) is dropped."""
    shape, layout = spec.shape(), spec.layout()
    vocab = SchemaVocab.for_shape(shape)
    qps = spec.questions_per_schema
    train_questions = generate_questions(
        spec.n_train_schemas, qps, shape, _stream(spec.seed, "train questions")
    )
    held_questions = generate_questions(
        spec.n_held_out_schemas, qps, shape, _stream(spec.seed, "held-out questions")
    )
    train = encode_questions(train_questions, vocab, layout, _stream(spec.seed, "train slots"))
    held = encode_questions(held_questions, vocab, layout, _stream(spec.seed, "held-out slots"))
    seen = set(train.texts)
    held = held.subset([i for i, text in enumerate(held.texts) if text not in seen])
    return SchemaLinkingData(vocab, layout, train, held, spec.sft_examples())


def supervised_examples(
    questions: EncodedQuestions, vocab: SchemaVocab
) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets), each (N, P + L − 1): the prompt and gold answer, scored on the
    answer's tokens only (its padding after <end> is not scored)."""
    sequences = torch.cat([questions.prompts, questions.answers], dim=1)
    inputs, targets = sequences[:, :-1], sequences[:, 1:].clone()
    prompt_length = questions.prompts.shape[1]
    targets[:, : prompt_length - 1] = IGNORE_INDEX
    targets[targets == vocab.id(PAD)] = IGNORE_INDEX
    return inputs, targets


def build_model(spec: SchemaLinkingSpec, vocab: SchemaVocab) -> PointerPolicy:
    """The policy at initialisation; seeds torch's global RNG with `spec.seed`."""
    torch.manual_seed(spec.seed)
    return PointerPolicy(spec.model, vocab.size, spec.context_tokens(), vocab.n_slots)


def weights_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 of the model's parameters: equal exactly when the weights are."""
    digest = hashlib.sha256()
    for parameter in model.parameters():
        digest.update(parameter.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@dataclass
class HeldOutAnswers:
    """Greedy answers to the held-out questions, remembered for the weights they were
    decoded with, so that a stage's final evaluation (by the trainer) and its report
    decode them once."""

    spec: SchemaLinkingSpec
    data: SchemaLinkingData
    _fingerprint: str = ""
    _texts: list[str] = field(default_factory=list)

    def __call__(self, model: torch.nn.Module) -> list[str]:
        fingerprint = weights_fingerprint(model)
        if fingerprint != self._fingerprint:
            held = self.data.held_out
            self._texts = decode_answers(model, held, self.data.vocab, self.spec.answer_tokens())
            self._fingerprint = fingerprint
        return self._texts


def evaluate_policy(
    spec: SchemaLinkingSpec, data: SchemaLinkingData, model: torch.nn.Module, held: HeldOutAnswers
) -> dict[str, Any]:
    """Greedy answers' metrics on the held-out questions, on the first
    `eval_train_questions` of SFT's (the memorization view) and, with GRPO, on the first
    `eval_train_questions` of GRPO's prompt pool (`grpo_pool`: what GRPO itself practised).

    SFT's questions and the pool are both prefixes of the training questions, so the
    longer prefix is decoded once and each view scores its own part of it."""
    n_seen = min(spec.eval_train_questions, data.sft_examples)
    n_pool = min(spec.eval_train_questions, spec.grpo_prompts())
    was_training = model.training
    model.eval()
    held_texts = held(model)
    decoded = data.train.subset(list(range(max(n_seen, n_pool))))
    texts = decode_answers(model, decoded, data.vocab, spec.answer_tokens())
    model.train(was_training)
    weights = spec.reward_weights()
    views = {
        "held_out": answer_metrics(held_texts, data.held_out.gold, weights),
        "train": answer_metrics(texts[:n_seen], decoded.gold[:n_seen], weights),
    }
    if spec.grpo is not None:
        views["grpo_pool"] = answer_metrics(texts[:n_pool], decoded.gold[:n_pool], weights)
    return views


def grpo_prompt_sampler(spec: SchemaLinkingSpec, grpo: GRPOSpec) -> PromptSampler:
    """GRPO's batches: prompt rows drawn from the first `grpo_prompts()` training questions."""
    return PromptSampler(spec.grpo_prompts(), grpo.train.batch_size)


def _eval_scalars(
    spec: SchemaLinkingSpec, data: SchemaLinkingData, held: HeldOutAnswers, model: torch.nn.Module
) -> dict[str, float]:
    """What the trainer logs at each evaluation: held-out filter, precision and reward."""
    metrics = answer_metrics(held(model), data.held_out.gold, spec.reward_weights())
    return {
        "eval/held_out_tables_filter": metrics["tables"]["filter"],
        "eval/held_out_columns_filter": metrics["columns"]["filter"],
        "eval/held_out_tables_precision": metrics["tables"]["precision"],
        "eval/held_out_columns_precision": metrics["columns"]["precision"],
        "eval/held_out_reward": metrics["reward"],
    }


MEMBERSHIP_RULE = (
    "members: the training-schema questions SFT trained on, with their gold answers (all "
    "of them, or the first cold_start_examples); non-members: questions on held-out "
    "schemas from the same generator. With a cold start, the other training questions "
    "(GRPO's prompts only, never trained on with their answers) are neither"
)


def assemble(spec: SchemaLinkingSpec, data: SchemaLinkingData, held: HeldOutAnswers) -> Built:
    """The run's parts: members are SFT's examples (prompt and gold answer, scored on the
    answer), non-members the held-out schemas' questions. Batches are stage 1's (SFT)."""
    sft = data.sft()
    sft_x, sft_y = supervised_examples(sft, data.vocab)
    held_x, held_y = supervised_examples(data.held_out, data.vocab)
    members = SequenceSet(sft_x, sft_y, sft.texts)
    return Built(
        make_model=lambda: build_model(spec, data.vocab),
        training_items=members,
        sample_batch=ExampleSampler(sft_x, sft_y, spec.train.batch_size),
        evaluate=lambda model: _eval_scalars(spec, data, held, model),
        membership=MembershipSplit(
            members=members,
            non_members=SequenceSet(held_x, held_y, data.held_out.texts),
            rule=MEMBERSHIP_RULE,
        ),
        vocab_size=data.vocab.size,
        vocabulary="\n".join(data.vocab.tokens),
        max_length=spec.context_tokens(),
    )


def build(spec: SchemaLinkingSpec) -> Built:
    data = build_dataset(spec)
    return assemble(spec, data, HeldOutAnswers(spec, data))


def _grpo_objective(
    spec: SchemaLinkingSpec, grpo: GRPOSpec, data: SchemaLinkingData, reference: torch.nn.Module
) -> GRPOObjective:
    weights = grpo.reward_weights()

    def rewards(rows: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
        values = [
            weights.reward(
                render(answer, data.train.slot_names[row], data.vocab), data.train.gold[row]
            )
            for row, answer in zip(rows.tolist(), answers.tolist(), strict=True)
        ]
        return torch.tensor(values, dtype=torch.float32)

    return GRPOObjective(
        prompts=data.train.prompts,
        reward=rewards,
        settings=GRPOSettings(
            group_size=grpo.group_size,
            clip=grpo.clip,
            beta=grpo.beta,
            temperature=grpo.temperature,
            answer_length=spec.answer_tokens(),
        ),
        alphabet=data.vocab.answer_alphabet(),
        end_id=data.vocab.id(END),
        pad_id=data.vocab.id(PAD),
        reference=reference,
    )


@register_kind(
    SchemaLinkingSpec,
    "Schema linking on synthetic schemas: rote SFT against SFT + GRPO with Schema-R1's reward.",
    build=build,
)
def run(spec: SchemaLinkingSpec, reporter: Reporter) -> dict[str, Any]:
    """SFT, then GRPO; each stage's held-out and training metrics, and the gain.

    Metrics are logged at the run's global step: SFT's as `sft/…` at 1…S1 (unprefixed
    when GRPO is off), GRPO's as `grpo/…` at S1 + 1…S1 + S2."""
    started = time.monotonic()
    data = build_dataset(spec)
    held = HeldOutAnswers(spec, data)
    built = assemble(spec, data, held)
    device = resolve_device(spec.train.device)
    sft_steps, grpo_steps = spec.train.steps, spec.grpo_steps()
    total = sft_steps + grpo_steps
    state = spec_checkpoint_state(spec)
    sft_reporter: Reporter = (
        ScopedReporter(reporter, reporter.checkpoint_dir() / "sft", "sft", 0.0, sft_steps / total)
        if spec.grpo is not None
        else reporter
    )
    sft = train_built(spec, built, sft_reporter, stage="sft")
    sft_outcome, policy = sft.outcome, sft.model
    after_sft = evaluate_policy(spec, data, policy, held)
    stages = {"sft": sft_outcome.as_dict()}
    resumed = sft_outcome.resumed_from_step
    after_grpo: dict[str, Any] | None = None
    if spec.grpo is not None:
        reference = copy.deepcopy(policy).eval().requires_grad_(False)
        grpo_reporter = ScopedReporter(
            reporter,
            None,  # the run's own folder: the probe target loads the final policy there
            "grpo",
            sft_steps / total,
            grpo_steps / total,
            record_checkpoints=True,
            step_offset=sft_steps,
        )
        grpo_trainer = Trainer(
            policy,
            spec.grpo.train,
            grpo_prompt_sampler(spec, spec.grpo),
            grpo_reporter,
            seed=spec.seed + 1,
            device=device,
            evaluate=built.evaluate,
            checkpoint_state={**state, "stage": "grpo"},
            objective=_grpo_objective(spec, spec.grpo, data, reference),
        )
        grpo_outcome = grpo_trainer.fit()
        stages["grpo"] = grpo_outcome.as_dict()
        if resumed >= sft_steps:
            resumed = sft_steps + grpo_outcome.resumed_from_step
        after_grpo = evaluate_policy(spec, data, policy, held)
    result = _report(spec, data, policy, after_sft, after_grpo)
    result["training"] = {
        "steps": total,
        "resumed_from_step": resumed,
        "stages": stages,
        "wall_seconds": round(time.monotonic() - started, 3),
    }
    result["device"] = str(device)
    return result


GAIN_KEYS = ("exact", "filter", "recall", "precision", "empty_rate", "mean_predicted")


def _gain(after_sft: dict[str, Any], after_grpo: dict[str, Any]) -> dict[str, Any]:
    """GRPO minus SFT on held-out schemas, per score: a filter gain that comes with larger
    predicted sets and lower precision is the superset pattern."""
    gain: dict[str, Any] = {}
    for part in ("tables", "columns"):
        sft, grpo = after_sft["held_out"][part], after_grpo["held_out"][part]
        gain[part] = {key: grpo[key] - sft[key] for key in GAIN_KEYS}
    gain["reward"] = after_grpo["held_out"]["reward"] - after_sft["held_out"]["reward"]
    return gain


def _report(
    spec: SchemaLinkingSpec,
    data: SchemaLinkingData,
    policy: torch.nn.Module,
    after_sft: dict[str, Any],
    after_grpo: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "n_parameters": sum(p.numel() for p in policy.parameters()),
        "vocab_size": data.vocab.size,
        "slots": data.vocab.n_slots,
        "context_tokens": spec.context_tokens(),
        "answer_tokens": spec.answer_tokens(),
        "train_questions": len(data.train),
        "held_out_questions": len(data.held_out),
        "sft_examples": data.sft_examples,
        "grpo_prompts": spec.grpo_prompts() if spec.grpo is not None else None,
        "dataset_digest": data.digest(),
        "sft": after_sft,
        "grpo": after_grpo,
        "gain": _gain(after_sft, after_grpo) if after_grpo is not None else None,
        "reward_range": {"min": MIN_ACCURACY_REWARD, "max": MAX_ACCURACY_REWARD},
        "paper": PAPER_TABLE,
    }
