"""What a finished run offers probes beyond a model and its training items, and what
its items are.

A kind's spec says which of these a run of it offers (`ExperimentSpec.probe_features`);
a probe declares the ones it needs (`ProbeSpec.needs`), so a probe that cannot apply is
refused when it is submitted. This module imports nothing of memlab's, so specs and
probes can both name features without importing each other.
"""

from __future__ import annotations

from enum import StrEnum


class Feature(StrEnum):
    held_out = "held_out"  # non-members from the same generator as the members
    generation = "generation"  # members are texts whose continuation can be decoded
    canaries = "canaries"  # planted secrets from a declared space, with controls
    facts = "facts"  # facts whose attribute entropy under the generator is known
    # A reference model can be trained on data from the same generator, disjoint from the
    # members and non-members, reading the items with the same token ids
    # (`ExperimentSpec.reference_refusal` says which run qualifies).
    disjoint_reference = "disjoint_reference"
    # Shadow models can be trained on random halves of the run's pool (its members and
    # non-members, token sequences): the run's spec takes `pool_subset` (core/shadows.py).
    shadow_training = "shadow_training"


class ItemType(StrEnum):
    """What a target's items are; a probe declares the types it can read."""

    tokens = "tokens"  # token sequences with next-token targets, read through a model
    vectors = "vectors"  # feature vectors (N, D)
    images = "images"  # images (N, C, H, W)
    samples = "samples"  # samples a generative run produced, saved as artifacts
