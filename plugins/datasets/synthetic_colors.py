"""``synthetic_colors``: generated images with a known two-level colour and shape taxonomy.

Each image is one filled shape on a light-grey, slightly noisy background. Two independent
hierarchies describe it: colour families → shades (e.g. red → maroon, red, salmon) and
shape families → shapes (round → circle, ellipse, ring; angular → square, triangle, diamond).
The label is ``"<shade> <shape>"`` (:func:`parse_label` recovers all four concepts). Image
``i`` depends only on ``(seed, i)``; the shade-shape pairs are balanced, every pair appearing
once per ``n_pairs`` images in a seeded order. It needs no files, so the image pipeline
runs end to end on a CPU with ground truth.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from pydantic import Field

from hsae.errors import BadInput
from hsae.interfaces.dataset import ImageDataset, ImageItem
from hsae.interfaces.plugin import PluginConfig

# family → shade → (hue in degrees, saturation, value)
COLOUR_FAMILIES: dict[str, dict[str, tuple[float, float, float]]] = {
    "red": {"maroon": (355, 0.85, 0.45), "red": (0, 0.9, 0.9), "salmon": (8, 0.5, 0.98)},
    "yellow": {"olive": (55, 0.85, 0.5), "gold": (47, 0.9, 0.95), "lemon": (58, 0.5, 1.0)},
    "green": {"forest": (130, 0.8, 0.4), "green": (120, 0.9, 0.8), "mint": (145, 0.4, 0.95)},
    "blue": {"navy": (230, 0.9, 0.4), "blue": (218, 0.9, 0.9), "sky": (200, 0.45, 0.98)},
}
SHAPE_FAMILIES: dict[str, tuple[str, ...]] = {
    "round": ("circle", "ellipse", "ring"),
    "angular": ("square", "triangle", "diamond"),
}
SHADES = [shade for shades in COLOUR_FAMILIES.values() for shade in shades]
SHAPES = [shape for shapes in SHAPE_FAMILIES.values() for shape in shapes]
_SUPERSAMPLE = 4


@dataclass(frozen=True)
class Concepts:
    """The four ground-truth concepts of one image."""

    colour_family: str
    shade: str
    shape_family: str
    shape: str


def parse_label(label: str) -> Concepts:
    """The concepts of a ``"<shade> <shape>"`` label."""
    try:
        shade, shape = label.split(" ")
        colour_family = next(f for f, shades in COLOUR_FAMILIES.items() if shade in shades)
        shape_family = next(f for f, shapes in SHAPE_FAMILIES.items() if shape in shapes)
    except (ValueError, StopIteration):
        raise BadInput(f"{label!r} is not a synthetic_colors label ('<shade> <shape>')") from None
    return Concepts(colour_family, shade, shape_family, shape)


class SyntheticColorsConfig(PluginConfig):
    n_images: int = Field(288, ge=1, description="number of images")
    size: int = Field(64, ge=16, le=1024, description="image side in pixels")
    seed: int = Field(0, description="seed of the pair order and of each image's jitter")
    noise: float = Field(0.02, ge=0, le=0.5, description="std of the background noise, in [0, 1] intensity units")


def _shade_rgb(shade: str, rng: np.random.Generator) -> tuple[int, int, int]:
    hue, sat, val = next(shades[shade] for shades in COLOUR_FAMILIES.values() if shade in shades)
    hue = (hue + rng.uniform(-4, 4)) % 360
    sat = float(np.clip(sat + rng.uniform(-0.05, 0.05), 0, 1))
    val = float(np.clip(val + rng.uniform(-0.05, 0.05), 0, 1))
    return tuple(round(255 * c) for c in colorsys.hsv_to_rgb(hue / 360, sat, val))


def _polygon(cx: float, cy: float, radius: float, corners: int, rotation: float) -> list[tuple[float, float]]:
    start = rotation - math.pi / 2
    return [
        (cx + radius * math.cos(start + 2 * math.pi * k / corners), cy + radius * math.sin(start + 2 * math.pi * k / corners))
        for k in range(corners)
    ]


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, tilt: float, fill) -> None:
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "ellipse":
        draw.ellipse([cx - r, cy - 0.55 * r, cx + r, cy + 0.55 * r], fill=fill)
    elif shape == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fill, width=max(1, round(0.35 * r)))
    elif shape == "square":
        draw.polygon(_polygon(cx, cy, r * math.sqrt(2) * 0.8, 4, math.pi / 4 + tilt), fill=fill)
    elif shape == "triangle":
        draw.polygon(_polygon(cx, cy, r, 3, tilt), fill=fill)
    else:  # diamond: a square on its corner, stretched vertically
        draw.polygon([(cx, cy - r), (cx + 0.65 * r, cy), (cx, cy + r), (cx - 0.65 * r, cy)], fill=fill)


class SyntheticColors(ImageDataset):
    """Generated shapes in shades of colour, labelled ``"<shade> <shape>"`` (two-level colour and shape taxonomies)."""

    Config = SyntheticColorsConfig

    @property
    def n_pairs(self) -> int:
        return len(SHADES) * len(SHAPES)

    def __len__(self) -> int:
        return self.config.n_images

    def pair(self, index: int) -> tuple[str, str]:
        """The (shade, shape) of image ``index``: the seeded order of all pairs, repeated."""
        cycle, position = divmod(index, self.n_pairs)
        pair = int(np.random.default_rng([self.config.seed, cycle]).permutation(self.n_pairs)[position])
        return SHADES[pair // len(SHAPES)], SHAPES[pair % len(SHAPES)]

    def item(self, index: int) -> ImageItem:
        """Image ``index``, generated from ``(seed, index)`` alone."""
        if not 0 <= index < len(self):
            raise IndexError(index)
        cfg = self.config
        shade, shape = self.pair(index)
        rng = np.random.default_rng([cfg.seed, index, 1])
        big = cfg.size * _SUPERSAMPLE
        grey = round(255 * rng.uniform(0.85, 0.95))
        canvas = Image.new("RGB", (big, big), (grey, grey, grey))
        r = big * rng.uniform(0.25, 0.33)
        cx, cy = big / 2 + big * rng.uniform(-0.1, 0.1, size=2)
        _draw_shape(ImageDraw.Draw(canvas), shape, cx, cy, r, rng.uniform(-0.2, 0.2), _shade_rgb(shade, rng))
        pixels = np.asarray(canvas.resize((cfg.size, cfg.size), Image.LANCZOS), dtype=np.float32)
        pixels += rng.normal(0, 255 * cfg.noise, size=pixels.shape)
        image = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")
        return ImageItem(f"synthetic_colors/{index:06d}", image, f"{shade} {shape}")

    def __iter__(self) -> Iterator[ImageItem]:
        for index in range(len(self)):
            yield self.item(index)
