"""`cross_modal`: the persona generator, the image-prefix model and the transfer metrics."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from core.data.personas import (
    MIN_FEATURE_DISTANCE,
    GlyphSpec,
    draw_personas,
    render_glyph,
    render_views,
)
from core.experiments.cross_modal import (
    NO_RELATION,
    CrossModalSpec,
    build,
    build_dataset,
    build_model,
    chain_accuracy,
    draw_cast,
    transfer_summary,
)
from core.models.image_prefix import ImageEncoderSpec, ImagePrefixModel
from core.models.sequence_model import SequenceModelSpec


def small(**fields: Any) -> CrossModalSpec:
    spec = CrossModalSpec.smoke_spec()
    return CrossModalSpec.model_validate({**spec.model_dump(mode="json"), **fields})


def test_personas_are_distinct_in_name_and_face_and_the_seed_fixes_them() -> None:
    cast = draw_personas(60, attributes=3, values_per_attribute=8, seed=3)
    assert len({p.name for p in cast}) == 60
    for i, a in enumerate(cast):
        for b in cast[i + 1 :]:
            assert sum(x != y for x, y in zip(a.features, b.features, strict=True)) >= (
                MIN_FEATURE_DISTANCE
            )
    assert draw_personas(60, 3, 8, seed=3) == cast
    assert draw_personas(60, 3, 8, seed=4) != cast


def test_views_of_one_persona_differ_by_noise_only_and_faces_differ_more() -> None:
    cast = draw_personas(2, attributes=1, values_per_attribute=2, seed=0)
    clean = GlyphSpec(noise=0.0, shift=0, brightness=0.0)
    rng = torch.Generator().manual_seed(0)
    first, again = (render_glyph(cast[0].features, clean, rng) for _ in range(2))
    other = render_glyph(cast[1].features, clean, rng)
    assert torch.equal(first, again)
    assert (first - other).abs().sum() > 1.0
    noisy = render_views(cast, views=3, spec=GlyphSpec(noise=0.1, shift=0), seed=1)
    assert noisy.shape == (6, 1, 16, 16) and noisy.min() >= 0 and noisy.max() <= 1
    assert not torch.equal(noisy[0], noisy[1])  # new noise, same persona
    assert torch.equal(noisy, render_views(cast, 3, GlyphSpec(noise=0.1, shift=0), seed=1))


def test_image_tokens_are_read_through_the_encoder_and_words_through_the_table() -> None:
    torch.manual_seed(0)
    bank = torch.rand(3, 1, 8, 8)
    spec = SequenceModelSpec(n_layer=1, width=8, mixer={"type": "attention", "n_head": 1})
    model = ImagePrefixModel(spec, ImageEncoderSpec(channels=2), n_words=5, bank=bank, block_size=2)
    idx = torch.tensor([[1, 6]])  # a word, then image 1
    embedded = model.embed(idx)
    assert torch.allclose(embedded[0, 0], model.decoder.tok_emb.weight[1])
    assert torch.allclose(embedded[0, 1], model.encoder(bank[1:2])[0])
    assert model(idx).shape == (1, 2, 5)  # logits over the words only
    # The pixels matter: another image under the same token id changes the output.
    model.bank[1] = torch.rand(1, 8, 8)
    assert not torch.allclose(model.embed(idx)[0, 1], embedded[0, 1])


def test_roles_do_not_depend_on_the_aligned_fraction_beyond_the_aligned_count() -> None:
    none, every = draw_cast(small(aligned_fraction=0.0)), draw_cast(small(aligned_fraction=1.0))
    assert none.personas == every.personas and none.role == every.role
    assert none.source == every.source and none.friend == every.friend
    assert not none.both and every.both == frozenset(every.indices("bridge"))
    evaluated = none.indices("evaluated")
    assert len(none.indices("evaluated", "text")) == len(evaluated) // 2


def test_training_states_each_fact_in_its_source_modality_only() -> None:
    spec = small(aligned_fraction=0.0)
    data = build_dataset(spec)
    cast = draw_cast(spec)
    trained_subjects = {q[0] for q in data.train.questions if q[1] != NO_RELATION}
    for direction in data.directions:
        asked = {int(s) for s in direction.target.inputs[:, 0]}
        assert not asked & trained_subjects, f"{direction.name} asks a trained subject"
    held_out_names = {data.vocab.id(cast.personas[i].name) for i in cast.indices("held_out")}
    assert not held_out_names & {q[0] for q in data.train.questions}
    # A text fact weighs as much as the image views of one image fact together.
    weights = dict(zip(data.train.templates, data.train.weights, strict=True))
    assert weights["text fact"] == spec.images.train_views and weights["image fact"] == 1


def test_the_mitigation_adds_the_bridge_facts_in_the_other_modality() -> None:
    without = build_dataset(small(aligned_fraction=0.0)).train
    with_pairs = build_dataset(small(aligned_fraction=1.0)).train
    assert set(without.questions) < set(with_pairs.questions)
    assert without.templates.count("image name") == with_pairs.templates.count("image name")


def test_a_binding_is_scored_at_the_image_and_a_fact_at_the_relation() -> None:
    built = build(small())
    members = built.membership.members
    binding = members.texts.index(next(t for t in members.texts if len(t.split()) == 2))
    assert members.targets[binding, 0] >= 0 and members.targets[binding, 1] < 0
    fact = next(i for i, t in enumerate(members.texts) if len(t.split()) == 3)
    assert members.targets[fact, 0] < 0 and members.targets[fact, 1] >= 0


def test_the_gap_is_withheld_below_the_alignment_threshold_with_a_reason() -> None:
    shown = transfer_summary(0.9, 0.5, alignment=0.95, chance=0.1, threshold=0.9)
    assert shown["gap"] == pytest.approx(0.4)
    assert shown["normalized_transfer"] == pytest.approx(0.5)
    assert shown["gap_withheld"] is None
    withheld = transfer_summary(0.9, 0.5, alignment=0.6, chance=0.1, threshold=0.9)
    assert withheld["gap"] is None and withheld["normalized_transfer"] is None
    assert "0.600" in withheld["gap_withheld"]
    assert withheld["target_accuracy"] == 0.5  # the accuracies are still reported


class _Lookup(torch.nn.Module):
    """A model that answers from a table: logits at position 1 put 1 on table[(s, r)]."""

    def __init__(self, table: dict[tuple[int, int], int], vocab: int) -> None:
        super().__init__()
        self.table, self.vocab = table, vocab
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*idx.shape, self.vocab)
        for row, (s, r) in enumerate(idx.tolist()):
            logits[row, 1, self.table.get((s, r), 0)] = 1.0
        return logits


def test_a_chain_counts_only_when_both_hops_are_right() -> None:
    friend, city = 9, 8
    # Subject 1's friend is 5 (right), whose city is 7 (right); subject 2 names 6 (wrong)
    # whose city happens to be the answer.
    model = _Lookup({(1, friend): 5, (5, city): 7, (2, friend): 6, (6, city): 7}, vocab=10)
    chains = ((1, 5, 7), (2, 5, 7))
    assert chain_accuracy(model, chains, friend, city) == 0.5
    assert chain_accuracy(model, (), friend, city) is None


def test_the_model_is_rebuilt_identically_and_its_bank_is_not_checkpointed() -> None:
    spec = small()
    first, second = build_model(spec, build_dataset(spec)), build_model(spec, build_dataset(spec))
    assert torch.equal(first.bank, second.bank)
    assert "bank" not in first.state_dict()
    for (name, a), (_, b) in zip(
        first.state_dict().items(), second.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"personas": 7}, "personas"),
        ({"personas": 200, "bridge_personas": 100, "held_out_personas": 40}, "personas"),
        ({"images": {"size": 18}}, "images.size"),
    ],
)
def test_a_spec_that_cannot_be_built_is_refused_at_the_field(
    fields: dict[str, Any], path: str
) -> None:
    with pytest.raises(ValueError, match=path.split(".")[-1]):
        CrossModalSpec.model_validate({"kind": "cross_modal", **fields})
