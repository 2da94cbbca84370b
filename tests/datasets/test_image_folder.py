"""image_folder: class sub-folders, any Pillow format, unreadable files reported and skipped."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest
from PIL import Image

from hsae.errors import BadInput
from hsae_plugins.datasets.image_files import read_rgb
from hsae_plugins.datasets.image_folder import ImageFolder


def jpeg_bytes(size=(32, 32), colour=(10, 200, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "JPEG")
    return buffer.getvalue()


def make_folder(root):
    (root / "cat").mkdir(parents=True)
    (root / "dog" / "puppies").mkdir(parents=True)
    (root / ".cache").mkdir()
    Image.new("RGB", (20, 10), (255, 0, 0)).save(root / "cat" / "b.png")
    (root / "cat" / "a.jpg").write_bytes(jpeg_bytes())
    Image.new("L", (12, 12), 77).save(root / "dog" / "gray.png")
    Image.new("RGB", (1, 1), (1, 2, 3)).save(root / "dog" / "tiny.png")
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(root / "dog" / "puppies" / "clear.webp")
    whole = jpeg_bytes((64, 64))
    (root / "dog" / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (root / "dog" / "garbage.jpg").write_bytes(b"not an image at all")
    Image.new("RGB", (5, 5)).save(root / "loose.bmp")
    (root / "notes.txt").write_text("not listed")
    Image.new("RGB", (5, 5)).save(root / ".cache" / "hidden.png")


def test_lists_class_folders_in_a_fixed_order_and_skips_unreadable_files(tmp_path, caplog):
    make_folder(tmp_path)
    dataset = ImageFolder(ImageFolder.Config(root=tmp_path))
    assert len(dataset) == 8  # every listed file, readable or not
    with caplog.at_level(logging.WARNING, logger="hsae.datasets"):
        items = list(dataset)
    assert [(it.image_id, it.label) for it in items] == [
        ("loose.bmp", None),
        ("cat/a.jpg", "cat"),
        ("cat/b.png", "cat"),
        ("dog/gray.png", "dog"),
        ("dog/puppies/clear.webp", "dog"),
        ("dog/tiny.png", "dog"),
    ]
    assert [image_id for image_id, _ in dataset.skipped] == ["dog/garbage.jpg", "dog/truncated.jpg"]
    assert "truncated" in dict(dataset.skipped)["dog/truncated.jpg"].lower()
    assert "garbage.jpg" in caplog.text and "truncated.jpg" in caplog.text
    assert all(it.image.mode == "RGB" for it in items)
    by_id = {it.image_id: np.asarray(it.image) for it in items}
    assert (by_id["dog/gray.png"] == 77).all()
    assert by_id["dog/tiny.png"].shape == (1, 1, 3)
    assert (by_id["dog/puppies/clear.webp"] == 255).all()  # transparency lands on white
    assert [it.image_id for it in ImageFolder(ImageFolder.Config(root=tmp_path))] == list(by_id)


def test_a_missing_root_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match="is not a directory"):
        len(ImageFolder(ImageFolder.Config(root=tmp_path / "absent")))


def test_read_rgb_applies_exif_orientation(tmp_path):
    image = Image.new("RGB", (30, 10), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° on display
    image.save(tmp_path / "rotated.jpg", exif=exif)
    assert read_rgb(tmp_path / "rotated.jpg").size == (10, 30)
