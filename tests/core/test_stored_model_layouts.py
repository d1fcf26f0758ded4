"""Sequence models stored before the gated block rebuild as they were: same layout, same
parameters, same numbers, same hash.

fixtures/sequence_models_v1/ was written by the code before `block` existed
(make_fixture.py there): a small model of every mixer, with its stored spec, spec hash,
parameter names and shapes, and logits on fixed tokens after `torch.manual_seed(0)`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from core.catalog import all_kinds, parse_spec
from core.models.sequence_model import SequenceModel, SequenceModelSpec
from core.spec_model import spec_hash

FIXTURE = json.loads(
    (Path(__file__).parent / "fixtures" / "sequence_models_v1" / "models.json").read_text()
)
MODELS = FIXTURE["models"]
VOCAB, LENGTH = 13, 12


def _build(spec: SequenceModelSpec) -> SequenceModel:
    torch.manual_seed(0)
    return SequenceModel(spec, vocab_size=VOCAB, block_size=LENGTH).eval()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_stored_model_spec_rebuilds_the_same_parameters_and_numbers(name: str) -> None:
    stored = MODELS[name]
    spec = SequenceModelSpec.model_validate(stored["spec"], context={"stored": True})
    assert spec_hash(spec) == stored["spec_hash"]
    model = _build(spec)
    shapes = {key: list(p.shape) for key, p in model.named_parameters()}
    assert shapes == stored["parameters"]
    with torch.no_grad():
        logits = model(torch.tensor(stored["tokens"]))
    torch.testing.assert_close(logits, torch.tensor(stored["logits"]))


@pytest.mark.parametrize("name", ["s4d", "mamba2"])
def test_the_same_spec_as_a_new_request_builds_the_gated_block(name: str) -> None:
    """S4D and Mamba-2 had layouts of their own: a request without `block` now gets
    the shared gated block, with other parameters (S6's own layout was that block)."""
    spec = SequenceModelSpec.model_validate(MODELS[name]["spec"])
    assert spec.block == "gated"
    shapes = {key: list(p.shape) for key, p in _build(spec).named_parameters()}
    assert shapes != MODELS[name]["parameters"]
    assert "blocks.0.mixer.conv.weight" in shapes and "blocks.0.mixer.out_proj.weight" in shapes


def test_a_stored_experiment_with_s4d_keeps_its_layout_and_hash() -> None:
    """Through the kind's parser, whose defaults are merged into the stored model spec."""
    stored = FIXTURE["associative_recall_s4d"]
    spec = parse_spec(stored["spec"])
    assert spec.model.block is None and spec.model.layout == "per_mixer"
    assert spec.model.mixer.expand is None
    assert spec_hash(spec) == stored["spec_hash"]


def test_the_kinds_default_models_name_no_block_for_stored_specs_to_inherit() -> None:
    """A kind's default model spec is merged under a stored one that lacks fields; a
    block there would turn a stored recurrent model's per-mixer layout into another."""
    defaults = [
        field.default
        for kind in all_kinds().values()
        for field in kind.spec_class.model_fields.values()
        if isinstance(field.default, SequenceModelSpec)
    ]
    assert defaults  # the sequence-model kinds are found
    assert all(default.block is None for default in defaults)
