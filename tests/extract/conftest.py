"""Small test images and the image plugins registered as an installed distribution would be
(the tiny offline models are built by ``tiny_model_dir`` in tests/conftest.py)."""

from __future__ import annotations

import pytest
from PIL import Image


@pytest.fixture
def two_images():
    """A 224×224 and a 160×96 image (both sides multiples of 32, so no resizing surprises)."""
    return [Image.new("RGB", (224, 224), (200, 30, 30)), Image.effect_noise((160, 96), 40).convert("RGB")]


# The entry points this package declares (pyproject.toml), written as an installed
# distribution's metadata so that the registry finds the plugins however hsae is installed.
ENTRY_POINTS = """\
[hsae.extractors]
qwen3_vl = hsae_plugins.extractors.qwen3_vl:Qwen3VLExtractor
gemma3 = hsae_plugins.extractors.gemma3:Gemma3Extractor
llava = hsae_plugins.extractors.llava:LlavaExtractor
hf_module = hsae_plugins.extractors.hf_module:HFModuleExtractor

[hsae.datasets]
image_folder = hsae_plugins.datasets.image_folder:ImageFolder
synthetic_colors = hsae_plugins.datasets.synthetic_colors:SyntheticColors

[hsae.backbones]
hf_vision = hsae_plugins.backbones.hf_vision:HFVision
precomputed = hsae_plugins.backbones.precomputed:Precomputed
pixel_stats = hsae_plugins.backbones.pixel_stats:PixelStats
"""


@pytest.fixture
def registered(tmp_path_factory, monkeypatch):
    """A folder on sys.path (returned) whose metadata registers the image plugins."""
    folder = tmp_path_factory.mktemp("entry_points")
    info = folder / "hsae_image_plugins_under_test-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hsae-image-plugins-under-test\nVersion: 0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(folder))
    return folder
