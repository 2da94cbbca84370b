"""synthetic_colors: deterministic, balanced images whose pixels carry their labelled concepts."""

from __future__ import annotations

import colorsys
from collections import Counter

import numpy as np
import pytest

from hsae.errors import BadInput
from hsae_plugins.datasets.synthetic_colors import COLOUR_FAMILIES, SHADES, SHAPES, SyntheticColors, parse_label


def make(**options):
    return SyntheticColors(SyntheticColors.Config(**options))


def test_images_depend_only_on_seed_and_index():
    a, b = list(make(n_images=10, seed=5)), list(make(n_images=10, seed=5))
    assert [x.label for x in a] == [y.label for y in b]
    assert all(np.array_equal(np.asarray(x.image), np.asarray(y.image)) for x, y in zip(a, b))
    assert np.array_equal(np.asarray(make(n_images=100, seed=5).item(7).image), np.asarray(a[7].image))
    other = list(make(n_images=10, seed=6))
    assert any(not np.array_equal(np.asarray(x.image), np.asarray(y.image)) for x, y in zip(a, other))


def test_every_shade_shape_pair_appears_once_per_cycle():
    dataset = make(n_images=2 * len(SHADES) * len(SHAPES), seed=2)
    labels = [item.label for item in dataset]
    n = dataset.n_pairs
    assert Counter(labels[:n]) == Counter(f"{s} {t}" for s in SHADES for t in SHAPES)
    assert Counter(labels[n:]) == Counter(labels[:n])
    assert labels[:n] != labels[n:]  # each cycle has its own order


def test_the_shape_is_drawn_in_its_shade_family_s_hue():
    for item in make(n_images=48, size=48, seed=0):
        concepts = parse_label(item.label)
        rgb = np.asarray(item.image, dtype=np.float64).reshape(-1, 3) / 255
        hsv = np.array([colorsys.rgb_to_hsv(*p) for p in rgb])
        coloured = hsv[hsv[:, 1] > 0.3]
        assert len(coloured) > 20, item.label
        hues = 360 * coloured[:, 0]
        centres = {f: np.mean([h if h < 180 else h - 360 for h, _, _ in shades.values()]) for f, shades in COLOUR_FAMILIES.items()}
        distance = {f: np.abs((np.median(((hues - c + 180) % 360)) - 180)) for f, c in centres.items()}
        assert min(distance, key=distance.get) == concepts.colour_family, item.label


def test_parse_label():
    c = parse_label("navy triangle")
    assert (c.colour_family, c.shade, c.shape_family, c.shape) == ("blue", "navy", "angular", "triangle")
    with pytest.raises(BadInput):
        parse_label("purple circle")
