"""hf_dataset: a saved Hugging Face dataset (only when the optional ``datasets`` package is installed)."""

from __future__ import annotations

import importlib
import io
import sys

import pytest
from PIL import Image

from hsae.errors import BadInput
from hsae_plugins.datasets.hf_dataset import HFDataset



def _has_datasets() -> bool:
    """The Hugging Face package, not a folder named ``datasets`` on sys.path (such as tests/datasets)."""
    try:
        return hasattr(importlib.import_module("datasets"), "load_from_disk")
    except ImportError:
        return False


HAS_DATASETS = _has_datasets()


def test_without_the_datasets_package_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(BadInput, match="pip install datasets"):
        len(HFDataset(HFDataset.Config(path=tmp_path)))


@pytest.mark.skipif(not HAS_DATASETS, reason="the optional 'datasets' package is not installed")
def test_reads_images_labels_and_skips_undecodable_rows(tmp_path):
    import datasets

    png = io.BytesIO()
    Image.new("L", (8, 8), 9).save(png, "PNG")
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=["cat", "dog"]), "name": datasets.Value("string")}
    )
    table = datasets.Dataset.from_dict(
        {
            "image": [{"bytes": png.getvalue(), "path": None}, {"bytes": b"broken", "path": None}, Image.new("RGB", (3, 3))],
            "label": [1, 0, 0],
            "name": ["a", "b", "c"],
        },
        features=features,
    )
    datasets.DatasetDict({"train": table}).save_to_disk(str(tmp_path / "saved"))
    with pytest.raises(BadInput, match="set split"):
        len(HFDataset(HFDataset.Config(path=tmp_path / "saved")))
    dataset = HFDataset(HFDataset.Config(path=tmp_path / "saved", split="train", id_column="name"))
    items = list(dataset)
    assert [(it.image_id, it.label, it.image.mode) for it in items] == [("a", "dog", "RGB"), ("c", "cat", "RGB")]
    assert [image_id for image_id, _ in dataset.skipped] == ["b"]
    with pytest.raises(BadInput, match="not a column"):
        len(HFDataset(HFDataset.Config(path=tmp_path / "saved", split="train", label_column="species")))
