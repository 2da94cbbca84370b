"""``pixel_stats``: a deterministic colour and texture descriptor that needs no model.

For CPU demos of HMS. Each image is resized to ``size``×``size`` and described by three
blocks, each scaled to unit length so that none dominates:

- hue: a histogram of ``hue_bins`` bins over the colour wheel, each pixel weighted by its
  chroma (saturation × value) and split linearly between its two nearest bins (circularly);
- tone: mean R, G, B, saturation and value;
- texture: a histogram of ``orientation_bins`` gradient orientations over [0, π) of the
  lightly blurred grey image, each pixel weighted by its squared gradient magnitude (so that
  outlines count and pixel noise does not), followed by the mean gradient magnitude.

The orientation histogram does not depend on where a shape sits, only on its outline
(a circle spreads over all bins, a square concentrates on two).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFilter
from pydantic import Field

from hsae.interfaces.backbone import Backbone
from hsae.interfaces.plugin import PluginConfig


class PixelStatsConfig(PluginConfig):
    size: int = Field(64, ge=8, le=512, description="side the image is resized to before measuring")
    hue_bins: int = Field(24, ge=4, description="bins of the chroma-weighted hue histogram")
    orientation_bins: int = Field(16, ge=2, description="bins of the gradient-orientation histogram")


def _unit(block: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(block, axis=-1, keepdims=True)
    return np.divide(block, norm, out=np.zeros_like(block), where=norm > 0)


def _circular_histogram(angle: np.ndarray, weight: np.ndarray, bins: int) -> np.ndarray:
    """Histogram of ``angle`` in units of a full turn ([0, 1)), linear between neighbouring bins."""
    position = angle * bins - 0.5
    low = np.floor(position).astype(np.int64)
    frac = position - low
    hist = np.zeros(bins)
    np.add.at(hist, low % bins, weight * (1 - frac))
    np.add.at(hist, (low + 1) % bins, weight * frac)
    return hist


def _hsv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hue in turns [0, 1), saturation and value of an (..., 3) array in [0, 1]."""
    value = rgb.max(-1)
    chroma = value - rgb.min(-1)
    saturation = np.divide(chroma, value, out=np.zeros_like(value), where=value > 0)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    safe = np.where(chroma > 0, chroma, 1.0)
    hue = np.select(
        [chroma == 0, value == r, value == g],
        [0.0, ((g - b) / safe) % 6, (b - r) / safe + 2],
        (r - g) / safe + 4,
    )
    return hue / 6.0, saturation, value


def describe(image: Image.Image, config: PixelStatsConfig) -> np.ndarray:
    """The descriptor of one image (length ``hue_bins + 5 + orientation_bins + 1``)."""
    rgb = np.asarray(image.convert("RGB").resize((config.size, config.size), Image.BILINEAR), dtype=np.float64) / 255
    hue, saturation, value = _hsv(rgb)
    hue_block = _circular_histogram(hue.ravel(), (saturation * value).ravel(), config.hue_bins)
    tone_block = np.concatenate([rgb.reshape(-1, 3).mean(0), [saturation.mean(), value.mean()]])
    small = image.convert("L").resize((config.size, config.size), Image.BILINEAR).filter(ImageFilter.BoxBlur(1))
    gy, gx = np.gradient(np.asarray(small, dtype=np.float64) / 255)
    magnitude = np.hypot(gx, gy)
    orientation = (np.arctan2(gy, gx) % np.pi) / np.pi  # in half turns, [0, 1)
    texture_block = np.concatenate(
        [_circular_histogram(orientation.ravel(), (magnitude**2).ravel(), config.orientation_bins), [magnitude.mean()]]
    )
    return np.concatenate([_unit(hue_block), _unit(tone_block), _unit(texture_block)])


class PixelStats(Backbone):
    """Colour and texture statistics of the pixels (hue histogram, mean tone, edge orientations); no model."""

    Config = PixelStatsConfig

    def embed(self, images: Sequence[Any]) -> torch.Tensor:
        return torch.as_tensor(np.stack([describe(image, self.config) for image in images]), dtype=torch.float32)
