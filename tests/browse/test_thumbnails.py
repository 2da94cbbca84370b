"""Top images become thumbnails when the run's recipe names an image dataset that yields them."""

from __future__ import annotations

from PIL import Image

from hsae import registry
from hsae.browse.site import THUMB_SIZE, _thumbnails

DATASET = {"name": "synthetic_colors", "n_images": 12}


def test_the_wanted_images_of_the_recipe_s_dataset_are_written_as_thumbnails(tmp_path):
    names = [item.image_id for item in registry.create("hsae.datasets", DATASET)]
    found = _thumbnails({"extract": {"dataset": DATASET}}, names, {0, 7}, tmp_path / "thumbs")
    assert found == {0: "thumbs/0.png", 7: "thumbs/7.png"}
    for path in found.values():
        with Image.open(tmp_path / path) as image:
            assert max(image.size) <= THUMB_SIZE and image.mode == "RGB"


def test_without_an_image_dataset_there_are_no_thumbnails(tmp_path):
    assert _thumbnails({"data": {"dataset": {"name": "synthetic_hierarchy"}}}, ["a", "b"], {0}, tmp_path) == {}
    assert _thumbnails({"extract": {"dataset": DATASET}}, None, {0}, tmp_path) == {}
