"""`associative_recall`: MQAR, KEEP-n-TH and Haar-projection tasks, per sequence mixer.

Reproduces the recall experiments of "Understanding Input Selectivity in Mamba" on the
Zoology MQAR task (Arora et al. 2024). A sequence model (any mixer: attention, linear
attention, S4D, S6, Mamba-2) is trained on synthetic sequences and scored only where
recall is needed.

MQAR, vocabulary V, length T, P key–value pairs. Keys come from [1, V/2), values from
[V/2, V). The first 2P tokens are the pairs; each key then appears once more as a
query, and only the queries are scored, against the value paired with the key.
`generator` picks the layout (core/data/recall_tasks.py):
- `zoology` (the default), as Zoology's `multiquery_ar`: distinct keys and values per
  sequence; the query of each key at gap k after the context with probability
  ∝ k^(a − 1), a = `power_a` = 0.01; every other position a uniform random token.
  Example (V=16, T=12, P=2):  2 8  6 10  2 13  8 9  6 3  0 3  → predict 8 at the first
  2 and 10 at the second 6; no answer follows its query.
- `memlab_v1`, the layout of runs stored before the field existed (which keep it):
  values drawn with replacement, query slots ∝ (slot + 1)^(−α), α = `power_law_alpha`,
  token 0 between, and each query followed by its answer. Those answers let a model
  guess among the values not yet seen (the "unqueried value" shortcut) and score
  H_P / P with no key bound to its value; under `zoology` that guess is worth 1/P.
The result reports this shortcut's score on the test sequences beside the accuracy.

KEEP-n-TH: T random tokens, then a marker; the model must emit the n-th token.

Haar (`task="haar"`), the study's approximation of discontinuous functions: the study
proves S6 can represent projections of its input onto Haar wavelets, which S4D, whose
convolution kernel is a sum of decaying exponentials, can only approximate. memlab's
synthetic version makes that projection the target. The input is T random bits, as
tokens 1 (bit 0) and 2 (bit 1); at every position t ≥ w − 1 the model must give the
coefficient of the last w bits on the Haar wavelet of width w (+1 on the newer half,
−1 on the older half), an integer in [−w/2, w/2], as class k + w/2 of w + 1 classes
(targets are token ids, so vocab_size ≥ w + 1). The target, as a function of the lag
s − t, is the step function ψ itself: a causal convolution with a discontinuous kernel.
Scored as accuracy over all positions t ≥ w − 1; w = `haar_width`, default 8, so the
window is a quarter of the default T = 32 and chance is at most 70/256 ≈ 0.27 (the
most frequent class, k = 0).
Example (w=4, T=8): bits 1 1 0 1 0 0 1 0 → from t=3 on, (b_t + b_{t−1}) − (b_{t−2} +
b_{t−3}) = −1, 0, −1, 0, 1 → targets 1, 2, 1, 2, 3 (positions 0–2 not scored).

Expected: attention solves MQAR at every pair count; S4D degrades as pairs grow at a
fixed state size; S6 beats S4D; recurrent mixers need width growing with length.
Defaults are a CPU-sized grid point (V=64, T=32, P=4, 2 layers of width 64, 2,000
steps of batch 64 at lr 1e-3), chosen so that one run takes minutes on a CPU core. On
one idle core of the 2-core EPYC VM, a batch-32 step at these sizes took 28 ms with
attention, 36 ms with S4D, 50 ms with Mamba-2 and 115 ms with S6 (its scan is a Python
loop over T); batch 64 roughly doubles that, so the default run takes about 2 min with
attention and about 8 min with S6. At these defaults attention solves MQAR at P = 2
and 4 (P = 8 needs about 6,000 steps); at batch 32 and lr 3e-3 every mixer stalls at the
score of guessing among the context's unqueried values (docs/reproductions.md; these
figures were measured with the memlab_v1 generator).
`memlab reproduce associative_recall` (examples/associative_recall.sweep.json) sweeps
mixers × pairs over seeds.
Zoology's grid is V=8192, T up to 256.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, model_validator

from core.built import Built, MembershipSplit
from core.data.recall_tasks import (
    haar_batch,
    keep_nth_batch,
    memlab_v1_mqar_batch,
    unqueried_value_shortcut,
    zoology_mqar_batch,
)
from core.evaluation import argmax_recall
from core.models.sequence_model import SequenceModel, SequenceModelSpec, parameter_count
from core.prepared import Prepared
from core.probes.features import Feature
from core.probes.target import SequenceSet
from core.registry import register_kind
from core.reporter import Reporter
from core.shadows import SHADOW_INDEX_PATH, PoolSubset, pool_subset_field, train_on_pool_subset
from core.specs import ExperimentSpec, TrainedSpec, TrainSpec
from core.training.fit import Trained, run_prepared
from core.training.samplers import ExampleSampler


class AssociativeRecallSpec(TrainedSpec):
    """One mixer on one task size; sweep mixer × num_kv_pairs × width for the study's plots."""

    kind: Literal["associative_recall"] = "associative_recall"
    task: Literal["mqar", "keep_nth", "haar"] = "mqar"
    vocab_size: int = Field(64, ge=8, le=65_536)
    seq_len: int = Field(32, ge=4, le=4096, description="Input length T.")
    num_kv_pairs: int = Field(4, ge=1, le=1024, description="MQAR: key-value pairs P.")
    generator: Literal["zoology", "memlab_v1"] = Field(
        "zoology",
        description="MQAR layout: 'zoology' as Zoology's multiquery_ar (distinct values, "
        "random filler, no answer after a query); 'memlab_v1' memlab's first layout, whose "
        "written-back answers allow an unqueried-value shortcut. A stored spec without "
        "this field is memlab_v1.",
    )
    power_a: float = Field(
        0.01,
        gt=0,
        le=10,
        description="MQAR, zoology generator: a query at gap k has probability ∝ "
        "k^(power_a − 1); 1 is uniform.",
    )
    power_law_alpha: float = Field(
        0.1,
        ge=0,
        le=10,
        description="MQAR, memlab_v1 generator: a query in slot s has probability ∝ "
        "(s + 1)^(−power_law_alpha).",
    )
    nth: int = Field(1, ge=1, description="KEEP-n-TH: which token to recall (1-based).")
    haar_width: int = Field(
        8,
        ge=2,
        le=4096,
        description="Haar: width w of the wavelet the input is projected on (even); "
        "targets are the w + 1 coefficient values.",
    )
    train_examples: int = Field(20_000, ge=1, le=10_000_000)
    test_examples: int = Field(1_000, ge=1, le=1_000_000)
    model: SequenceModelSpec = SequenceModelSpec(
        n_layer=2, width=64, mixer={"type": "attention", "n_head": 2}, positions="learned"
    )
    train: TrainSpec = TrainSpec(
        steps=2000,
        batch_size=64,
        lr=1e-3,
        min_lr=1e-4,
        warmup_fraction=0.05,  # 100 of the default 2,000 steps
        weight_decay=0.1,
        eval_every=500,
        checkpoint_every=1000,
    )

    @model_validator(mode="after")
    def _fits(self) -> AssociativeRecallSpec:
        if self.task == "mqar":
            if 4 * self.num_kv_pairs > self.seq_len:
                raise ValueError(
                    f"seq_len {self.seq_len} has no room for {self.num_kv_pairs} pairs and "
                    "their queries (needs seq_len ≥ 4 · num_kv_pairs)"
                )
            if self.num_kv_pairs > self.vocab_size // 2 - 1:
                raise ValueError(f"vocab_size {self.vocab_size} has too few keys for the pairs")
        elif self.task == "keep_nth" and self.nth > self.seq_len:
            raise ValueError(f"nth {self.nth} is beyond seq_len {self.seq_len}")
        elif self.task == "haar":
            if self.haar_width % 2 or self.haar_width > self.seq_len:
                raise ValueError(
                    f"haar_width {self.haar_width} must be even and at most seq_len {self.seq_len}"
                )
            if self.vocab_size < self.haar_width + 1:
                raise ValueError(
                    f"vocab_size {self.vocab_size} cannot hold the {self.haar_width + 1} Haar "
                    "coefficient classes (needs vocab_size ≥ haar_width + 1)"
                )
        return self

    @property
    def hash_exclude(self) -> frozenset[str]:  # type: ignore[override]
        """Fields count only where they change the data, so specs hash as they did before
        the fields existed (their stored results and checkpoints still match):
        `haar_width` for the Haar task; `generator` and `power_a` for zoology MQAR, where
        `power_law_alpha`, memlab_v1's skew, does not count."""
        unused: set[str] = set()
        if self.task != "haar":
            unused.add("haar_width")
        if self.zoology_mqar:
            unused.add("power_law_alpha")
        else:
            unused |= {"generator", "power_a"}
        return TrainedSpec.hash_exclude | unused

    @property
    def zoology_mqar(self) -> bool:
        """Whether the spec's sequences are MQAR in Zoology's layout."""
        return self.task == "mqar" and self.generator == "zoology"

    pool_subset: PoolSubset | None = pool_subset_field()

    # A spec stored before `generator` existed ran memlab_v1 and keeps it; a new request
    # that names none gets the field's default, zoology.
    stored_defaults: ClassVar[dict[str, Any]] = {"generator": "memlab_v1"}
    added_fields: ClassVar[frozenset[str]] = frozenset({"pool_subset"})
    # Shadow models of one pool differ only in their row of the inclusion matrix.
    batch_fields: ClassVar[tuple[str, ...]] = (*TrainedSpec.batch_fields, SHADOW_INDEX_PATH)
    membership_fields: ClassVar[dict[str, Any]] = {"train_examples": 400, "test_examples": 400}

    smoke_fields: ClassVar[dict[str, Any]] = {
        "vocab_size": 16,
        "seq_len": 16,
        "num_kv_pairs": 2,
        "train_examples": 64,
        "test_examples": 32,
        "model": {"n_layer": 1, "width": 16},
        "train": {"steps": 6, "batch_size": 8, "eval_every": 3},
    }

    def context_tokens(self) -> int:
        return self.seq_len + (1 if self.task == "keep_nth" else 0)

    def parameter_count(self) -> int:
        return parameter_count(self.model, self.vocab_size + 1, self.seq_len + 1)

    def dataset_items(self) -> int:
        return self.train_examples + self.test_examples

    def probe_features(self) -> frozenset[Feature]:
        features = {Feature.held_out, Feature.disjoint_reference}
        if self.pool_subset is None:  # a shadow's own shadows would have another pool
            features.add(Feature.shadow_training)
        return frozenset(features)

    def reference_refusal(self, reference: ExperimentSpec) -> str | None:
        """Token ids are the task's, whatever is drawn: a run of the same task with a
        seed that draws neither this run's training nor its test sequences trains on
        fresh draws of the same generator."""
        assert isinstance(reference, AssociativeRecallSpec)
        data = ("task", "vocab_size", "seq_len", "num_kv_pairs", "nth", "haar_width")
        data += ("generator", "power_a", "power_law_alpha")
        differing = [name for name in data if getattr(self, name) != getattr(reference, name)]
        if differing:
            return f"the reference's task differs from the target's in {', '.join(differing)}"
        if reference.seed in (self.seed, self.seed + TEST_SEED_OFFSET):
            return (
                f"a reference of seed {reference.seed} trained on this run's training or test "
                "sequences; give it another seed"
            )
        return None

    def reference_spec(self) -> ExperimentSpec | None:
        """The same task with the next seed: fresh draws of the same generator."""
        fields = self.model_dump(mode="json", exclude={"probes"})
        return type(self).model_validate({**fields, "seed": self.seed + 1})


TEST_SEED_OFFSET = 1_000_003  # test sequences: seed + this, apart from training's seed


def build_split(
    spec: AssociativeRecallSpec, count: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    rng = torch.Generator().manual_seed(seed)
    if spec.zoology_mqar:
        return zoology_mqar_batch(
            count, spec.vocab_size, spec.seq_len, spec.num_kv_pairs, spec.power_a, rng
        )
    if spec.task == "mqar":
        return memlab_v1_mqar_batch(
            count, spec.vocab_size, spec.seq_len, spec.num_kv_pairs, spec.power_law_alpha, rng
        )
    if spec.task == "haar":
        return haar_batch(count, spec.seq_len, spec.haar_width, rng)
    return keep_nth_batch(count, spec.vocab_size, spec.seq_len, spec.nth, rng)


def held_out_split(spec: AssociativeRecallSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """The fresh test sequences a run is scored on, seeded apart from the training ones."""
    return build_split(spec, spec.test_examples, seed=spec.seed + TEST_SEED_OFFSET)


def shortcut_accuracy(spec: AssociativeRecallSpec) -> float | None:
    """MQAR: the unqueried-value shortcut's expected accuracy on the test sequences, the
    score a model reaches binding no key to its value (`unqueried_value_shortcut`): about
    H_P / P in the memlab_v1 layout, at most 1/P in Zoology's. None for other tasks."""
    if spec.task != "mqar":
        return None
    inputs, targets = held_out_split(spec)
    return unqueried_value_shortcut(inputs, targets, spec.num_kv_pairs)


def model_vocab_size(spec: AssociativeRecallSpec) -> int:
    """The task's tokens, plus KEEP-n-TH's marker token."""
    return spec.vocab_size + (1 if spec.task == "keep_nth" else 0)


def build(spec: AssociativeRecallSpec) -> Built:
    """Training examples and fresh test examples from the task's generator, and the model.

    Members: the fixed training examples; non-members: the test examples, fresh draws of
    the same generator. A model that solved the task recalls both alike, so a membership
    attack near AUC 0.5 here means generalisation, not a broken probe."""
    train_inputs, train_targets = build_split(spec, spec.train_examples, seed=spec.seed)
    test_inputs, test_targets = held_out_split(spec)
    vocab = model_vocab_size(spec)
    length = int(train_inputs.shape[1])

    def make_model() -> SequenceModel:
        torch.manual_seed(spec.seed)
        return SequenceModel(spec.model, vocab, length)

    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        return {
            "eval/test_accuracy": argmax_recall(
                model, test_inputs, test_targets, batch_size=256
            ).accuracy,
            "eval/train_accuracy": argmax_recall(
                model, train_inputs[:1000], train_targets[:1000], batch_size=256
            ).accuracy,
        }

    members = _as_items(train_inputs, train_targets)
    built = Built(
        make_model=make_model,
        training_items=members,
        sample_batch=ExampleSampler(train_inputs, train_targets, spec.train.batch_size),
        evaluate=evaluate,
        membership=MembershipSplit(
            members=members,
            non_members=_as_items(test_inputs, test_targets),
            rule="members: every training example; non-members: the test examples, "
            "fresh draws of the same generator",
        ),
        vocab_size=vocab,
        vocabulary=f"{spec.task}:ids<{vocab}>",
        max_length=length,
    )
    return train_on_pool_subset(built, spec.pool_subset, spec.train.batch_size)


def _as_items(inputs: torch.Tensor, targets: torch.Tensor) -> SequenceSet:
    return SequenceSet(inputs, targets, tuple(" ".join(map(str, row)) for row in inputs.tolist()))


def prepare(spec: AssociativeRecallSpec) -> Prepared:
    """The run's parts, and its report: recall accuracy on fresh test sequences."""

    def report(trained: Trained, reporter: Reporter) -> dict[str, Any]:
        return _report(spec, trained)

    return Prepared(build(spec), report)


def _report(spec: AssociativeRecallSpec, trained: Trained) -> dict[str, Any]:
    outcome = trained.outcome
    best = outcome.best_eval("eval/test_accuracy")
    return {
        "task": spec.task,
        "mixer": spec.model.mixer.type,
        "num_kv_pairs": spec.num_kv_pairs if spec.task == "mqar" else None,
        "haar_width": spec.haar_width if spec.task == "haar" else None,
        "width": spec.model.layer_width,
        "n_parameters": trained.n_parameters,
        "generator": spec.generator if spec.task == "mqar" else None,
        "test_accuracy": outcome.final_eval.get("eval/test_accuracy"),
        # Only a test accuracy well above this shows keys bound to values.
        "shortcut_accuracy": shortcut_accuracy(spec),
        "train_accuracy": outcome.final_eval.get("eval/train_accuracy"),
        "best": {"step": best[0], **best[1]} if best else None,
        # Every evaluation, so a reader can tell a plateau from a run still climbing.
        "eval_history": [{"step": step, **metrics} for step, metrics in outcome.eval_history],
        "device": str(trained.device),
        "training": outcome.as_dict(),
    }


@register_kind(
    AssociativeRecallSpec,
    "MQAR / KEEP-n-TH recall and Haar projection with attention, linear attention, S4D, S6 "
    "or Mamba-2 mixers.",
    build=build,
    prepare=prepare,
)
def run(spec: AssociativeRecallSpec, reporter: Reporter) -> dict[str, Any]:
    """Train one sequence model; report recall accuracy on fresh test sequences."""
    return run_prepared(spec, prepare(spec), reporter)
