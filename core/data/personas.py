"""Synthetic personas: a made-up name, a procedurally drawn face-like glyph, attribute facts.

A persona's identity is a handful of discrete face features (face width and height,
eye spacing and size, mouth curve, hair, skin tone), drawn so that any two personas
differ in at least two of them. A *view* of a persona renders those features with
per-image nuisance: a shift of up to `shift` pixels, a brightness change and Gaussian
pixel noise. No image is downloaded; the same seed draws the same personas and pixels.

Facts give each persona one value per attribute (a city, a job, …), uniformly among
`values_per_attribute` values, so a fact's chance level is 1 / values_per_attribute.
(Friends, for the multi-hop variant, are drawn by the kind: core/experiments/cross_modal.py.)

Example (seed 0):
    >>> cast = draw_personas(3, attributes=2, values_per_attribute=4, seed=0)
    >>> [p.name for p in cast]
    ['Nounddraithnond', 'Landbethboul', 'Dorkrindte']
    >>> cast[0].facts
    (('lives_in', 'Oslo'), ('works_as', 'pilot'))
    >>> images = render_views(cast, views=2, spec=GlyphSpec(), seed=0)
    >>> tuple(images.shape)  # (personas · views, 1, H, W)
    (6, 1, 16, 16)
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch

from core.data.names import FACT_NAMES, UniqueNames

# (relation word, its values); a spec takes the first `attributes` relations and the
# first `values_per_attribute` values of each.
ATTRIBUTE_VALUES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "lives_in",
        (
            "Oslo",
            "Lima",
            "Cairo",
            "Quito",
            "Perth",
            "Dakar",
            "Hanoi",
            "Riga",
            "Baku",
            "Suva",
            "Accra",
            "Bern",
        ),
    ),
    (
        "works_as",
        (
            "pilot",
            "baker",
            "nurse",
            "judge",
            "tailor",
            "miner",
            "poet",
            "chef",
            "clerk",
            "diver",
            "farmer",
            "mason",
        ),
    ),
    (
        "owns",
        (
            "cat",
            "dog",
            "horse",
            "parrot",
            "goat",
            "ferret",
            "rabbit",
            "turtle",
            "canary",
            "lizard",
            "pony",
            "hamster",
        ),
    ),
    (
        "plays",
        (
            "chess",
            "golf",
            "tennis",
            "polo",
            "rugby",
            "cricket",
            "hockey",
            "squash",
            "bridge",
            "darts",
            "poker",
            "curling",
        ),
    ),
    (
        "drinks",
        (
            "tea",
            "coffee",
            "cocoa",
            "cider",
            "kefir",
            "mate",
            "lassi",
            "soda",
            "juice",
            "broth",
            "milk",
            "water",
        ),
    ),
    (
        "drives",
        (
            "van",
            "tram",
            "truck",
            "sedan",
            "bus",
            "moped",
            "tractor",
            "jeep",
            "taxi",
            "coupe",
            "bike",
            "kart",
        ),
    ),
)
MAX_ATTRIBUTES = len(ATTRIBUTE_VALUES)
MAX_VALUES = min(len(values) for _, values in ATTRIBUTE_VALUES)
NAME_SYLLABLES = (1, 3)

# Levels of each identity feature; a persona takes one level of each.
FEATURE_LEVELS: dict[str, int] = {
    "face_width": 3,
    "face_height": 3,
    "eye_spacing": 3,
    "eye_size": 2,
    "mouth": 3,
    "hair": 4,
    "skin": 4,
}
MIN_FEATURE_DISTANCE = 2  # any two personas differ in at least this many features


@dataclass(frozen=True)
class GlyphSpec:
    """How a view is drawn: image side, shift and noise (the nuisance)."""

    size: int = 16
    shift: int = 1  # pixels, each direction
    noise: float = 0.15  # std of the Gaussian pixel noise, on a [0, 1] scale
    brightness: float = 0.1  # a view's brightness is scaled by 1 ± this (uniform)


@dataclass(frozen=True)
class Persona:
    """One made-up person: a name, identity features (one level each) and facts."""

    name: str
    features: tuple[int, ...]  # in FEATURE_LEVELS' order
    facts: tuple[tuple[str, str], ...]  # (relation, value) per attribute


def relations(attributes: int) -> tuple[str, ...]:
    """The relation words of the first `attributes` attributes."""
    return tuple(relation for relation, _ in ATTRIBUTE_VALUES[:attributes])


def attribute_values(attributes: int, values_per_attribute: int) -> tuple[str, ...]:
    """Every value word of the first `attributes` attributes, in order."""
    return tuple(
        value
        for _, values in ATTRIBUTE_VALUES[:attributes]
        for value in values[:values_per_attribute]
    )


def draw_personas(
    count: int, attributes: int, values_per_attribute: int, seed: int
) -> list[Persona]:
    """`count` personas with distinct names, features at least MIN_FEATURE_DISTANCE apart,
    and uniform facts; the same seed draws the same personas."""
    if not 1 <= attributes <= MAX_ATTRIBUTES:
        raise ValueError(f"attributes must be in [1, {MAX_ATTRIBUTES}], not {attributes}")
    if not 2 <= values_per_attribute <= MAX_VALUES:
        raise ValueError(f"values_per_attribute must be in [2, {MAX_VALUES}]")
    rng = random.Random(seed)
    names = UniqueNames(FACT_NAMES, rng)
    features = _distinct_features(count, rng)
    cast = []
    for index in range(count):
        facts = tuple(
            (relation, rng.choice(values[:values_per_attribute]))
            for relation, values in ATTRIBUTE_VALUES[:attributes]
        )
        cast.append(Persona(names.draw(NAME_SYLLABLES), features[index], facts))
    return cast


def feature_space_size() -> int:
    """How many distinct feature combinations there are."""
    return math.prod(FEATURE_LEVELS.values())


def _distinct_features(count: int, rng: random.Random) -> list[tuple[int, ...]]:
    """`count` feature tuples, each at least MIN_FEATURE_DISTANCE features from the others
    (redrawn until it is); raises when the space is too crowded to find one."""
    levels = tuple(FEATURE_LEVELS.values())
    drawn: list[tuple[int, ...]] = []
    for _ in range(count):
        for _attempt in range(10_000):
            candidate = tuple(rng.randrange(n) for n in levels)
            if all(_distance(candidate, other) >= MIN_FEATURE_DISTANCE for other in drawn):
                drawn.append(candidate)
                break
        else:
            raise ValueError(
                f"cannot draw {count} personas whose faces differ in {MIN_FEATURE_DISTANCE} "
                "features; ask for fewer personas"
            )
    return drawn


def _distance(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    return sum(x != y for x, y in zip(a, b, strict=True))


def render_views(personas: list[Persona], views: int, spec: GlyphSpec, seed: int) -> torch.Tensor:
    """`views` noisy views of each persona: (len(personas) · views, 1, H, W) in [0, 1],
    persona-major (row p · views + v is view v of persona p)."""
    rng = torch.Generator().manual_seed(seed)
    images = [
        render_glyph(persona.features, spec, rng) for persona in personas for _ in range(views)
    ]
    return torch.stack(images) if images else torch.zeros(0, 1, spec.size, spec.size)


def render_glyph(features: tuple[int, ...], spec: GlyphSpec, rng: torch.Generator) -> torch.Tensor:
    """One view (1, H, W) of the face with these features: a skin-toned ellipse, two dark
    eyes, a mouth line curved by the `mouth` level, a band of hair, then shifted, scaled
    in brightness and noised (draws from `rng`)."""
    width, height, spacing, eye, mouth, hair, skin = features
    size = spec.size
    centre = (size - 1) / 2
    ys, xs = torch.meshgrid(
        torch.arange(size, dtype=torch.float32),
        torch.arange(size, dtype=torch.float32),
        indexing="ij",
    )  # (H, W) each
    shift_y, shift_x = (
        int(v) for v in torch.randint(-spec.shift, spec.shift + 1, (2,), generator=rng)
    )
    cy, cx = centre + 0.5 + shift_y, centre + shift_x
    scale = size / 16  # the levels below are in pixels of a 16-pixel glyph
    half_w, half_h = (4.0 + width) * scale, (5.0 + 0.8 * height) * scale
    image = torch.zeros(size, size)
    face = ((xs - cx) / half_w) ** 2 + ((ys - cy) / half_h) ** 2 <= 1.0
    image[face] = 0.45 + 0.15 * skin
    hair_rows = ys <= cy - half_h + (0.5 + 0.8 * hair) * scale
    image[face & hair_rows & (hair > 0)] = 0.1 if hair % 2 else 1.0
    eye_y, eye_dx = cy - 0.8 * scale, (1.5 + 0.8 * spacing) * scale
    for side in (-1, 1):
        eyes = (xs - (cx + side * eye_dx)) ** 2 + (ys - eye_y) ** 2 <= (
            0.7 + 0.6 * eye
        ) ** 2 * scale**2
        image[eyes] = 0.0
    curve = (mouth - 1) * 0.35  # frown, flat, smile
    mouth_y = cy + 2.8 * scale - curve * ((xs - cx) / scale) ** 2 / 4
    lips = ((ys - mouth_y).abs() <= 0.5) & ((xs - cx).abs() <= 2.5 * scale)
    image[lips & face] = 0.05
    brightness = 1.0 + spec.brightness * (2 * torch.rand((), generator=rng) - 1)
    noise = spec.noise * torch.randn(size, size, generator=rng)
    return (image * brightness + noise).clamp(0.0, 1.0).unsqueeze(0)
