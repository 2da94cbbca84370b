"""The paper's dataset samplers (Appendix E.1) on tiny fake copies of each dataset's layout."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from PIL import Image

from hsae.errors import BadInput
from hsae_plugins.datasets.coco import COCOSample
from hsae_plugins.datasets.color import ColorSubset
from hsae_plugins.datasets.imagenet import ImageNetSample
from hsae_plugins.datasets.inaturalist import INaturalistSample


def write_images(folder, count, suffix=".png"):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", (4, 4), (i * 7 % 256, 0, 0)).save(folder / f"img{i:03d}{suffix}")


def ids(dataset):
    return [f.image_id for f in dataset.files]


@pytest.fixture
def imagenet_root(tmp_path):
    for k, wnid in enumerate(["n01", "n02", "n03"]):
        write_images(tmp_path / "train" / wnid, 7 + k, ".JPEG")
        write_images(tmp_path / "val" / wnid, 3, ".JPEG")
    return tmp_path


def test_imagenet_draws_per_class_from_train_and_uses_all_of_val(imagenet_root):
    train = ImageNetSample(ImageNetSample.Config(root=imagenet_root, per_class=4, seed=1))
    labels = Counter(f.label for f in train.files)
    assert labels == {"n01": 4, "n02": 4, "n03": 4}
    assert all(f.image_id.startswith(f"train/{f.label}/") for f in train.files)
    assert ids(train) == ids(ImageNetSample(ImageNetSample.Config(root=imagenet_root, per_class=4, seed=1)))
    assert ids(train) != ids(ImageNetSample(ImageNetSample.Config(root=imagenet_root, per_class=4, seed=2)))
    first_two = ImageNetSample(ImageNetSample.Config(root=imagenet_root, per_class=4, seed=1, max_classes=2))
    assert ids(first_two) == ids(train)[:8]  # a class's draw does not depend on the other classes
    test = ImageNetSample(ImageNetSample.Config(root=imagenet_root, split="test", per_class=1))
    assert len(test) == 9 and {f.image_id.split("/")[0] for f in test.files} == {"val"}
    assert len(list(train)) == 12


def test_imagenet_without_class_folders_is_bad_input(tmp_path):
    write_images(tmp_path / "val", 2)  # flat validation folder
    with pytest.raises(BadInput, match="no class folders"):
        len(ImageNetSample(ImageNetSample.Config(root=tmp_path, split="test")))


def test_inaturalist_train_and_test_are_disjoint_draws_per_species(tmp_path):
    for name, count in [("00000_Aves_a", 12), ("00001_Aves_b", 5), ("00002_Plantae_c", 1)]:
        write_images(tmp_path / "train" / name, count, ".jpg")
    config = dict(root=tmp_path, per_species=5, seed=3)
    train = INaturalistSample(INaturalistSample.Config(split="train", **config))
    test = INaturalistSample(INaturalistSample.Config(split="test", **config))
    assert Counter(f.label for f in train.files) == {"00000_Aves_a": 5, "00001_Aves_b": 2}
    assert Counter(f.label for f in test.files) == Counter(f.label for f in train.files)
    assert not set(ids(train)) & set(ids(test))


def coco_fixture(tmp_path, n_images=60):
    images = [{"id": 100 + i, "file_name": f"{100 + i:012d}.jpg"} for i in range(n_images)]
    categories = [{"id": 18, "name": "dog"}, {"id": 1, "name": "person"}, {"id": 3, "name": "car"}]
    annotations = []
    for i in range(n_images):  # every image has a person; every 2nd a dog; every 3rd a car
        for cat, every in [(1, 1), (18, 2), (3, 3)]:
            if i % every == 0:
                annotations.append({"id": len(annotations), "image_id": 100 + i, "category_id": cat})
    annotations.append({"id": 999, "image_id": 5000, "category_id": 1})  # an image the file does not list
    path = tmp_path / "instances_val2017.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path, annotations


def test_coco_draws_disjoint_images_per_category_in_id_order(tmp_path):
    path, annotations = coco_fixture(tmp_path)
    contains = {}
    for a in annotations:
        contains.setdefault(a["image_id"], set()).add({1: "person", 3: "car", 18: "dog"}[a["category_id"]])
    config = dict(images=tmp_path / "val2017", annotations=path, per_category=4, seed=0)
    train = COCOSample(COCOSample.Config(split="train", **config))
    test = COCOSample(COCOSample.Config(split="test", **config))
    assert [f.label for f in train.files] == ["person"] * 4 + ["car"] * 4 + ["dog"] * 4
    everything = ids(train) + ids(test)
    assert len(everything) == len(set(everything)) == 24  # no image twice, in either split
    for f in train.files + test.files:
        assert f.label in contains[int(f.image_id.split(".")[0])]
        assert f.path == tmp_path / "val2017" / f.image_id
    two = COCOSample(COCOSample.Config(split="train", max_categories=2, **config))
    assert ids(two) == ids(train)[:8]


def test_coco_rejects_a_file_that_is_not_an_instances_file(tmp_path):
    path = tmp_path / "captions.json"
    path.write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(BadInput, match="categories"):
        len(COCOSample(COCOSample.Config(images=tmp_path, annotations=path)))


def test_color_splits_each_class_eight_to_two(tmp_path):
    write_images(tmp_path / "class0", 10)
    write_images(tmp_path / "class1", 10)
    train = ColorSubset(ColorSubset.Config(root=tmp_path, seed=4))
    test = ColorSubset(ColorSubset.Config(root=tmp_path, split="test", seed=4))
    assert Counter(f.label for f in train.files) == {"class0": 8, "class1": 8}
    assert Counter(f.label for f in test.files) == {"class0": 2, "class1": 2}
    assert sorted(ids(train) + ids(test)) == sorted(f"class{c}/img{i:03d}.png" for c in (0, 1) for i in range(10))
    subset = tmp_path / "mono.txt"
    subset.write_text("\n".join(f"class0/img{i:03d}.png" for i in range(5)) + "\n")
    mono = ColorSubset(ColorSubset.Config(root=tmp_path, subset=subset, split="test"))
    assert len(mono) == 1 and mono.files[0].label == "class0"
