"""`associative_recall`: MQAR, KEEP-n-TH and Haar-projection tasks, per sequence mixer.

Reproduces the recall experiments of "Understanding Input Selectivity in Mamba" on the
Zoology MQAR task (Arora et al. 2024). A sequence model (any mixer: attention, linear
attention, S4D, S6, Mamba-2) is trained on synthetic sequences and scored only where
recall is needed.

MQAR, vocabulary V, length T, P key–value pairs. Keys come from [1, V/2), values from
[V/2, V); token 0 is filler. The first 2P tokens are the pairs; each key then appears
once more as a query at a position drawn with probability ∝ (slot + 1)^(−α) over the
free slots (power-law gaps), followed by its value. Only query positions are scored.
Example (V=16, T=12, P=2):  3 11  5 9  0 0  5 9  0 0  3 11   → predict 9 after the
second 5 and 11 after the second 3.

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
score of guessing among the context's unqueried values (docs/reproductions.md).
scripts/reproduce_associative_recall.py sweeps mixers × pairs × width × length.
Zoology's grid is V=8192, T up to 256.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, model_validator
from safetensors.torch import load_model
from torch.nn import functional as F

from core.models.sequence_model import SequenceModel, SequenceModelSpec, parameter_count
from core.probes.registry import register_probe_target
from core.probes.target import Feature, ProbeTarget, SequenceSet
from core.registry import register_kind
from core.reporter import Reporter
from core.specs import ExperimentSpec, ResourceEstimate, TrainSpec
from core.training.device import resolve_device
from core.training.samplers import ExampleSampler
from core.training.trainer import IGNORE_INDEX, Trainer, spec_checkpoint_state

FILLER = 0


class AssociativeRecallSpec(ExperimentSpec):
    """One mixer on one task size; sweep mixer × num_kv_pairs × width for the study's plots."""

    kind: Literal["associative_recall"] = "associative_recall"
    task: Literal["mqar", "keep_nth", "haar"] = "mqar"
    vocab_size: int = Field(64, ge=8, le=65_536)
    seq_len: int = Field(32, ge=4, le=4096, description="Input length T.")
    num_kv_pairs: int = Field(4, ge=1, le=1024, description="MQAR: key-value pairs P.")
    power_law_alpha: float = Field(0.1, ge=0, le=10, description="MQAR: query gap skew.")
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
        """`haar_width` counts only for the Haar task, so MQAR and KEEP-n-TH specs hash as
        they did before the field existed (their stored results and checkpoints still match)."""
        return ExperimentSpec.hash_exclude | ({"haar_width"} if self.task != "haar" else set())

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

    def resource_estimate(self) -> ResourceEstimate:
        base = super().resource_estimate()
        return ResourceEstimate(
            parameters=parameter_count(self.model, self.vocab_size + 1, self.seq_len + 1),
            steps=base.steps,
            batch_size=base.batch_size,
            dataset_items=self.train_examples + self.test_examples,
        )


def mqar_batch(
    count: int, vocab: int, seq_len: int, pairs: int, alpha: float, rng: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` MQAR sequences: inputs (N, T) and targets (N, T), IGNORE_INDEX except at queries."""
    half = vocab // 2
    keys = torch.stack([torch.randperm(half - 1, generator=rng)[:pairs] + 1 for _ in range(count)])
    values = torch.randint(half, vocab, (count, pairs), generator=rng)
    tokens = torch.full((count, seq_len + 1), FILLER, dtype=torch.long)
    tokens[:, 0 : 2 * pairs : 2] = keys
    tokens[:, 1 : 2 * pairs : 2] = values
    # Free slots after the context hold (query, answer) pairs; power-law over slot index.
    slots = (seq_len + 1 - 2 * pairs) // 2
    weights = (torch.arange(slots, dtype=torch.float64) + 1) ** -alpha
    targets = torch.full((count, seq_len + 1), IGNORE_INDEX, dtype=torch.long)
    for row in range(count):
        chosen = torch.multinomial(weights, pairs, replacement=False, generator=rng)
        order = torch.randperm(pairs, generator=rng)
        positions = 2 * pairs + 2 * chosen  # the query's position
        tokens[row, positions] = keys[row, order]
        tokens[row, positions + 1] = values[row, order]
        targets[row, positions] = values[row, order]  # predict the value after the query
    return tokens[:, :-1], targets[:, :-1]


def keep_nth_batch(
    count: int, vocab: int, seq_len: int, nth: int, rng: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """T random tokens then the marker `vocab`; the target after the marker is token n."""
    tokens = torch.randint(1, vocab, (count, seq_len), generator=rng)
    inputs = torch.cat([tokens, torch.full((count, 1), vocab)], dim=1)  # (N, T + 1)
    targets = torch.full_like(inputs, IGNORE_INDEX)
    targets[:, -1] = tokens[:, nth - 1]
    return inputs, targets


def haar_batch(
    count: int, seq_len: int, width: int, rng: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """T random bits as tokens 1/2; target at t ≥ width − 1 is (Haar coefficient + width/2).

    coefficient_t = Σ_{t−w/2 < s ≤ t} b_s − Σ_{t−w < s ≤ t−w/2} b_s.
    """
    bits = torch.randint(0, 2, (count, seq_len), generator=rng)
    sums = F.pad(bits.cumsum(1), (1, 0))  # sums[:, i] = Σ_{s < i} b_s, (N, T + 1)
    half = width // 2
    end = torch.arange(width - 1, seq_len) + 1  # one past each scored position
    newer = sums[:, end] - sums[:, end - half]
    older = sums[:, end - half] - sums[:, end - width]
    targets = torch.full((count, seq_len), IGNORE_INDEX, dtype=torch.long)
    targets[:, width - 1 :] = newer - older + half
    return bits + 1, targets


def build_split(
    spec: AssociativeRecallSpec, count: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    rng = torch.Generator().manual_seed(seed)
    if spec.task == "mqar":
        return mqar_batch(
            count, spec.vocab_size, spec.seq_len, spec.num_kv_pairs, spec.power_law_alpha, rng
        )
    if spec.task == "haar":
        return haar_batch(count, spec.seq_len, spec.haar_width, rng)
    return keep_nth_batch(count, spec.vocab_size, spec.seq_len, spec.nth, rng)


def model_vocab_size(spec: AssociativeRecallSpec) -> int:
    """The task's tokens, plus KEEP-n-TH's marker token."""
    return spec.vocab_size + (1 if spec.task == "keep_nth" else 0)


@torch.no_grad()
def recall_accuracy(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of scored positions whose argmax prediction is the target."""
    device = next(model.parameters()).device
    correct = total = 0
    for start in range(0, inputs.shape[0], 256):
        batch_in = inputs[start : start + 256].to(device)
        batch_target = targets[start : start + 256].to(device)
        predictions = model(batch_in).argmax(-1)
        scored = batch_target != IGNORE_INDEX
        correct += int((predictions[scored] == batch_target[scored]).sum())
        total += int(scored.sum())
    return correct / max(1, total)


@register_kind(
    AssociativeRecallSpec,
    "MQAR / KEEP-n-TH recall and Haar projection with attention, linear attention, S4D, S6 "
    "or Mamba-2 mixers.",
)
def run(spec: AssociativeRecallSpec, reporter: Reporter) -> dict[str, Any]:
    """Train one sequence model; report recall accuracy on fresh test sequences."""
    device = resolve_device(spec.train.device)
    train_inputs, train_targets = build_split(spec, spec.train_examples, seed=spec.seed)
    test_inputs, test_targets = build_split(spec, spec.test_examples, seed=spec.seed + 1_000_003)
    torch.manual_seed(spec.seed)
    model = SequenceModel(spec.model, model_vocab_size(spec), train_inputs.shape[1])

    def evaluate(_: torch.nn.Module) -> dict[str, float]:
        return {
            "eval/test_accuracy": recall_accuracy(model, test_inputs, test_targets),
            "eval/train_accuracy": recall_accuracy(
                model, train_inputs[:1000], train_targets[:1000]
            ),
        }

    trainer = Trainer(
        model,
        spec.train,
        ExampleSampler(train_inputs, train_targets, spec.train.batch_size),
        reporter,
        seed=spec.seed,
        device=device,
        evaluate=evaluate,
        checkpoint_state=spec_checkpoint_state(spec),
    )
    outcome = trainer.fit()
    best = outcome.best_eval("eval/test_accuracy")
    return {
        "task": spec.task,
        "mixer": spec.model.mixer.type,
        "num_kv_pairs": spec.num_kv_pairs if spec.task == "mqar" else None,
        "haar_width": spec.haar_width if spec.task == "haar" else None,
        "width": spec.model.layer_width,
        "n_parameters": model.num_parameters(),
        "test_accuracy": outcome.final_eval.get("eval/test_accuracy"),
        "train_accuracy": outcome.final_eval.get("eval/train_accuracy"),
        "best": {"step": best[0], **best[1]} if best else None,
        # Every evaluation, so a reader can tell a plateau from a run still climbing.
        "eval_history": [{"step": step, **metrics} for step, metrics in outcome.eval_history],
        "device": str(device),
        "training": outcome.as_dict(),
    }


# --- Probes: what a finished associative_recall run offers `core.probes` --------------


def _as_items(inputs: torch.Tensor, targets: torch.Tensor) -> SequenceSet:
    return SequenceSet(inputs, targets, tuple(" ".join(map(str, row)) for row in inputs.tolist()))


@register_probe_target(
    AssociativeRecallSpec, lambda _: frozenset({Feature.held_out, Feature.fixed_vocabulary})
)
def probe_target(spec: AssociativeRecallSpec, weights: Path, device: torch.device) -> ProbeTarget:
    """Members: the fixed training examples; non-members: the run's test examples, fresh
    draws of the same generator. A model that solved the task recalls both alike, so a
    membership attack near AUC 0.5 here means generalisation, not a broken probe."""
    train_inputs, train_targets = build_split(spec, spec.train_examples, seed=spec.seed)
    test_inputs, test_targets = build_split(spec, spec.test_examples, seed=spec.seed + 1_000_003)
    vocab = model_vocab_size(spec)
    model = SequenceModel(spec.model, vocab, train_inputs.shape[1]).to(device)
    load_model(model, str(weights), device=str(device))
    return ProbeTarget(
        model=model,
        n_parameters=model.num_parameters(),
        vocab_size=vocab,
        vocabulary=f"{spec.task}:ids<{vocab}>",
        members=_as_items(train_inputs, train_targets),
        non_members=_as_items(test_inputs, test_targets),
        max_length=int(train_inputs.shape[1]),
    )
