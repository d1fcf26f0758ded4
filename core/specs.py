"""Validated, immutable specs: what a researcher submits, and what the engine builds from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, model_validator

from core.probes.features import Feature, ItemType
from core.probes.spec import ProbeRequest
from core.spec_model import SpecModel, field_error, spec_hash, stored

__all__ = [
    "ComputeLimit",
    "ComputedSpec",
    "ExperimentSpec",
    "ResourceEstimate",
    "SpecModel",
    "TrainSpec",
    "TrainedSpec",
    "field_error",
    "spec_hash",
    "stored",
]


Device = Literal["auto", "cpu", "cuda"]
LRSchedule = Literal["cosine", "linear", "constant"]
# Which parameters weight decay applies to; the rule is `core.training.weight_decay`'s.
WeightDecayOn = Literal["matrices", "all"]
# A request that gives no warmup and no decay length gets these fractions of `steps`.
DEFAULT_WARMUP_FRACTION = 0.05
DEFAULT_DECAY_FRACTION = 1.0


class TrainSpec(SpecModel):
    """How a kind that trains a model runs its optimisation loop (AdamW).

    Warmup and decay are each given as a fraction of `steps` (the default, so any `steps`
    works on its own) or in absolute steps, not both.
    """

    steps: int = Field(2000, ge=1, le=10_000_000, description="Optimizer steps.")
    batch_size: int = Field(64, ge=1, le=65_536)
    lr: float = Field(1e-3, gt=0, le=10, description="Peak learning rate.")
    min_lr: float = Field(1e-4, ge=0, le=10, description="Learning rate at the end of decay.")
    schedule: LRSchedule = "cosine"
    warmup_steps: int | None = Field(
        None, ge=0, description="Linear warmup length in steps; exclusive with warmup_fraction."
    )
    warmup_fraction: float | None = Field(
        None,
        ge=0,
        le=1,
        description=f"Warmup as a fraction of steps (default {DEFAULT_WARMUP_FRACTION} when "
        "neither warmup field is given).",
    )
    decay_steps: int | None = Field(
        None,
        ge=1,
        description="Step at which decay reaches min_lr (then held); exclusive with "
        "decay_fraction; null with no decay_fraction = steps.",
    )
    decay_fraction: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Decay end as a fraction of steps (default 1.0 when neither decay field "
        "is given).",
    )
    weight_decay: float = Field(0.0, ge=0, le=10)
    weight_decay_on: WeightDecayOn | None = Field(
        None,
        description='Parameters weight decay applies to: "matrices" (the default), the weights '
        "of linear and convolution layers only, not norms, biases, embeddings or state-space "
        'parameters; "all", every parameter. Null (specs stored before this field) = "all".',
    )
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.99, ge=0, lt=1)
    grad_clip: float | None = Field(1.0, gt=0, description="Max global grad norm; null disables.")
    eval_every: int = Field(500, ge=1, description="Steps between evaluations.")
    checkpoint_every: int = Field(1000, ge=1, description="Steps between checkpoints.")
    device: Device = "auto"

    hash_exclude: ClassVar[frozenset[str]] = frozenset({"checkpoint_every"})
    added_fields: ClassVar[frozenset[str]] = frozenset({"warmup_fraction", "decay_fraction"})
    # A stored spec lacking weight_decay_on predates it and decayed every parameter.
    request_defaults: ClassVar[dict[str, Any]] = {"weight_decay_on": "matrices"}
    exclusive_fields: ClassVar[tuple[frozenset[str], ...]] = (
        frozenset({"warmup_steps", "warmup_fraction"}),
        frozenset({"decay_steps", "decay_fraction"}),
    )

    @model_validator(mode="before")
    @classmethod
    def _default_fractions(cls, raw: Any) -> Any:
        """A request naming neither form of a length gets the default fraction. A stored
        spec always names the absolute form (null or not), so it keeps its meaning."""
        if not isinstance(raw, dict):
            return raw
        filled = dict(raw)
        if "warmup_steps" not in filled and "warmup_fraction" not in filled:
            filled["warmup_fraction"] = DEFAULT_WARMUP_FRACTION
        if "decay_steps" not in filled and "decay_fraction" not in filled:
            filled["decay_fraction"] = DEFAULT_DECAY_FRACTION
        return filled

    @model_validator(mode="after")
    def _check_schedule(self, info: ValidationInfo) -> TrainSpec:
        if self.min_lr > self.lr:
            raise field_error("min_lr", f"min_lr ({self.min_lr}) must not exceed lr ({self.lr})")
        for group in self.exclusive_fields:
            given = sorted(name for name in group if getattr(self, name) is not None)
            if len(given) > 1:
                raise field_error(given[1], f"give {' or '.join(given)}, not both")
        if self.warmup_steps is not None and self.warmup_steps > self.steps:
            raise field_error(
                "warmup_steps",
                f"warmup_steps ({self.warmup_steps}) must not exceed steps ({self.steps}); "
                "or give warmup_fraction",
            )
        if self.decay_steps is not None and not stored(info) and self.decay_steps > self.steps:
            raise field_error(
                "decay_steps",
                f"decay_steps ({self.decay_steps}) must not exceed steps ({self.steps}); "
                "or give decay_fraction",
            )
        if self.decay_end < self.warmup:
            field = "decay_steps" if self.decay_steps is not None else "decay_fraction"
            raise field_error(
                field,
                f"decay ends at step {self.decay_end}, before warmup ends at {self.warmup}",
            )
        return self

    @property
    def warmup(self) -> int:
        """Warmup length in steps."""
        if self.warmup_steps is not None:
            return self.warmup_steps
        return round((self.warmup_fraction or 0.0) * self.steps)

    @property
    def weight_decay_scope(self) -> WeightDecayOn:
        """The parameters weight decay applies to, null resolved to the old "all"."""
        return self.weight_decay_on or "all"

    @property
    def decay_end(self) -> int:
        """The step at which decay reaches min_lr."""
        if self.decay_steps is not None:
            return self.decay_steps
        if self.decay_fraction is not None:
            return max(1, round(self.decay_fraction * self.steps))
        return self.steps


@dataclass(frozen=True)
class ComputeLimit:
    """A size a computing kind asks for, capped by a server setting the kind names itself.

    value:   what the spec asks for (e.g. a matrix dimension);
    path:    the spec field that sets it, for the refusal (e.g. "spec.dim");
    setting: the environment variable that caps it (e.g. "MEMLAB_MAX_MATRIX_DIM");
    default: the cap when the server does not set it.
    """

    value: int
    path: str
    setting: str
    default: int


@dataclass(frozen=True)
class ResourceEstimate:
    """What a run would ask of a worker, for the server's limits (0 = not applicable)."""

    parameters: int = 0
    steps: int = 0
    batch_size: int = 0
    dataset_items: int = 0
    limits: tuple[ComputeLimit, ...] = ()


class ExperimentSpec(SpecModel):
    """Base of every experiment kind's spec; subclasses narrow `kind` to a literal.

    A nested spec given in part keeps the kind's defaults for the rest: with a kind
    whose default `train` has lr=0.01, `{"train": {"steps": 100}}` still trains at 0.01.
    """

    kind: str
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seeds every random draw of the run.")
    max_wall_s: int | None = Field(
        None,
        ge=1,
        description="Wall-time limit in seconds; the run fails past it (capped by the server).",
    )

    probes: tuple[ProbeRequest, ...] = Field(
        (),
        max_length=16,
        description="Probes to run on the final model when training succeeds, "
        'e.g. [{"kind": "loss_mia"}]; see GET /v1/probe-kinds.',
    )

    # Fields that cannot change the results, left out of the spec hash.
    hash_exclude: ClassVar[frozenset[str]] = frozenset({"max_wall_s", "probes"})
    # Dotted paths of fields whose default depends on other fields: null in the template
    # a client copies (`template`), resolved by `fill_defaults` in every validated spec,
    # so a stored spec holds the value it ran with and its hash is stable.
    derived_fields: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _probes_apply(self) -> ExperimentSpec:
        for index, probe in enumerate(self.probes):
            if probe.shadow_models() is not None:
                raise field_error(
                    ("probes", index),
                    f"probe {probe.kind!r} reads shadow models, which the server trains "
                    "before it runs: submit it with POST /v1/probes once this run has "
                    "succeeded",
                    probe.model_dump(mode="json"),
                )
            if (reason := probe.inapplicability(self)) is not None:
                raise field_error(("probes", index), reason, probe.model_dump(mode="json"))
        return self

    @model_validator(mode="before")
    @classmethod
    def _complete_nested_specs(cls, raw: Any, info: ValidationInfo) -> Any:
        if not isinstance(raw, dict):
            return raw
        filled = cls.fill_defaults(dict(raw))
        for name, field in cls.model_fields.items():
            if isinstance(field.default, SpecModel) and isinstance(filled.get(name), dict):
                default = field.default
                # A stored sub-spec that lacks a field added since predates it: the
                # default's value for it (a new request's) must not be laid over it,
                # or the stored spec would change meaning and hash.
                absent = default.later_fields() - filled[name].keys() if stored(info) else set()
                filled[name] = _deep_merge(
                    default.model_dump(exclude=absent), filled[name], default
                )
        return filled

    @classmethod
    def fill_defaults(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """Hook for defaults that depend on other fields (e.g. batch size per task); a
        derived field given as null is unset."""
        return raw

    @classmethod
    def template(cls) -> dict[str, Any]:
        """The default spec as a client should copy it: every field, derived ones null
        (posting it back gives the default spec)."""
        data = cls.model_validate({"kind": cls.model_fields["kind"].default}).model_dump(
            mode="json"
        )
        for path in cls.derived_fields:
            *parents, leaf = path.split(".")
            node = data
            for parent in parents:
                node = node[parent]
            node[leaf] = None
        return data

    # The fields, over the defaults, of a run of this kind that takes 5 s or less on one
    # CPU core, for the contract test over every registered kind. Every kind declares one.
    smoke_fields: ClassVar[dict[str, Any]] = {}

    @classmethod
    def smoke_spec(cls) -> ExperimentSpec:
        """The kind's default spec with its `smoke_fields` laid over it."""
        return cls._default_with(cls.smoke_fields, "smoke_fields")

    @classmethod
    def _default_with(cls, fields: dict[str, Any], declared_as: str) -> ExperimentSpec:
        if not fields:
            raise NotImplementedError(f"{cls.__name__} declares no {declared_as}")
        return cls.model_validate({"kind": cls.model_fields["kind"].default, **fields})

    # The fields, over the defaults, of a spec whose membership split holds at least 200
    # members and 200 non-members: the contract test checks on it that a blind baseline
    # sits at chance (on a handful of items that check would pass whatever the split).
    # Every kind whose runs offer membership probes declares one.
    membership_fields: ClassVar[dict[str, Any]] = {}

    @classmethod
    def membership_spec(cls) -> ExperimentSpec:
        """The kind's default spec with its `membership_fields` laid over it."""
        return cls._default_with(cls.membership_fields, "membership_fields")

    def context_tokens(self) -> int | None:
        """The model's context length T in tokens, for probes that prompt it; None =
        unbounded or not a sequence model."""
        return None

    def probe_features(self) -> frozenset[Feature] | None:
        """What a finished run of this spec offers probes; None = its kind cannot be probed."""
        return None

    def reference_refusal(self, reference: ExperimentSpec) -> str | None:
        """Why `reference`, a run of this kind, cannot be this run's reference model
        (`reference_mia`): it must have trained on data from the same generator disjoint
        from this run's members and non-members, with the same token ids. None if it can."""
        return f"{self.kind} runs offer no disjoint-data reference"

    def reference_spec(self) -> ExperimentSpec | None:
        """The spec of a run that `reference_refusal` accepts as this run's reference
        model, or None when this run offers none."""
        return None

    def probe_item_type(self) -> ItemType:
        """What the items of this kind's probe target are."""
        return ItemType.tokens

    def requested_device(self) -> Device:
        """The device the run asks for; "cuda" routes it to the GPU queue."""
        return "auto"

    def resource_estimate(self) -> ResourceEstimate:
        """What the run would ask of a worker, from the spec's fields alone (no data is
        built); every kind answers it through `TrainedSpec` or `ComputedSpec`."""
        raise NotImplementedError(
            f"{type(self).__name__} must derive from TrainedSpec or ComputedSpec"
        )


class TrainedSpec(ExperimentSpec):
    """Base of kinds that train a model. `train` is required (each kind gives its default
    schedule), and the estimate is built from `parameter_count` and `dataset_items`, which
    every such kind must give: a kind cannot pass the parameter cap by saying nothing."""

    train: TrainSpec

    # The fields in which runs of this kind may differ and still train as one batched
    # ensemble (`core.batching`): their models must come out the same shape. A kind whose
    # seed draws its vocabulary leaves "seed" out, or its seeds would not stack.
    batch_fields: ClassVar[tuple[str, ...]] = ("seed", "train.lr", "train.min_lr")

    def parameter_count(self) -> int:
        """Trainable parameters of the model the spec builds."""
        raise NotImplementedError(f"{type(self).__name__} must give parameter_count()")

    def dataset_items(self) -> int:
        """Items the run generates or reads; an upper bound where the data decides it."""
        raise NotImplementedError(f"{type(self).__name__} must give dataset_items()")

    def training_steps(self) -> int:
        """Optimizer steps the whole run takes: `train.steps`, plus those of any later
        stage a kind trains (e.g. an RL stage after supervised training)."""
        return self.train.steps

    def requested_device(self) -> Device:
        return self.train.device

    def resource_estimate(self) -> ResourceEstimate:
        return ResourceEstimate(
            parameters=self.parameter_count(),
            steps=self.training_steps(),
            batch_size=self.train.batch_size,
            dataset_items=self.dataset_items(),
        )


class ComputedSpec(ExperimentSpec):
    """Base of kinds that compute without training (Monte Carlo, closed forms, tabular
    learners): no `train`, no checkpoints to resume from; the kind names its own limits."""

    def compute_limits(self) -> tuple[ComputeLimit, ...]:
        """Each size the run asks for, with the server setting that caps it."""
        raise NotImplementedError(f"{type(self).__name__} must give compute_limits()")

    def resource_estimate(self) -> ResourceEstimate:
        return ResourceEstimate(limits=self.compute_limits())


def _deep_merge(
    base: dict[str, Any], override: dict[str, Any], model: SpecModel | None = None
) -> dict[str, Any]:
    """`override` laid over `base` (the dump of the default `model`), recursively; a
    sub-spec of another `type` (a different member of a discriminated union, e.g. another
    mixer) replaces the default whole. A field of one of the model's `exclusive_fields`
    groups in `override` (even as null) drops the group's other fields from `base`, at
    every depth (a `train` inside a sub-spec as much as the top-level one)."""
    if "type" in override and override.get("type") != base.get("type"):
        return dict(override)
    merged = dict(base)
    for group in model.exclusive_fields if model is not None else ():
        if group & override.keys():
            for name in group - override.keys():
                merged.pop(name, None)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            nested = getattr(model, key, None)
            merged[key] = _deep_merge(
                merged[key], value, nested if isinstance(nested, SpecModel) else None
            )
        else:
            merged[key] = value
    return merged
