"""HMS backbones: pixel_stats, hf_vision, precomputed, and the per-image-set embedding cache."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from pydantic import ValidationError

from hsae.errors import BadInput
from hsae.extract.embeddings import store_embeddings
from hsae.store import ActivationStore, StoreWriter
from hsae_plugins.backbones.hf_vision import HFVision
from hsae_plugins.backbones.pixel_stats import PixelStats
from hsae_plugins.backbones.precomputed import Precomputed
from hsae_plugins.datasets.synthetic_colors import SyntheticColors, parse_label


def cosines(x: np.ndarray) -> np.ndarray:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return x @ x.T


def within_minus_across(sim: np.ndarray, groups: list[str]) -> float:
    same = np.equal.outer(groups, groups)
    off = ~np.eye(len(groups), dtype=bool)
    return float(sim[same & off].mean() - sim[~same].mean())


def test_pixel_stats_is_deterministic_and_groups_colours_and_shapes():
    items = list(SyntheticColors(SyntheticColors.Config(n_images=144, seed=1)))
    backbone = PixelStats(PixelStats.Config())
    e = backbone.embed([it.image for it in items]).numpy()
    np.testing.assert_array_equal(e, backbone.embed([it.image for it in items]).numpy())
    concepts = [parse_label(it.label) for it in items]
    hue = slice(0, 24)
    texture = slice(24 + 5, None)
    assert within_minus_across(cosines(e[:, hue]), [c.colour_family for c in concepts]) > 0.3
    assert within_minus_across(cosines(e[:, texture]), [c.shape_family for c in concepts]) > 0.1
    assert within_minus_across(cosines(e), [c.colour_family for c in concepts]) > 0.1


@pytest.fixture
def clip_dirs(tmp_path_factory):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8)
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    dirs = {}
    for name, model in [
        ("vision", CLIPVisionModel(CLIPVisionConfig(**vision))),
        ("dual", CLIPModel(CLIPConfig(vision_config=vision, projection_dim=16,
                                      text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                                       num_attention_heads=2, vocab_size=99,
                                                       bos_token_id=0, eos_token_id=1)))),
    ]:
        dirs[name] = tmp_path_factory.mktemp(name)
        model.save_pretrained(dirs[name])
        processor.save_pretrained(dirs[name])
    return dirs


def test_hf_vision_pools_a_saved_vision_model(clip_dirs):
    from transformers import CLIPImageProcessor, CLIPVisionModel

    images = [it.image for it in SyntheticColors(SyntheticColors.Config(n_images=3))]
    model = CLIPVisionModel.from_pretrained(clip_dirs["vision"]).eval()
    pixels = CLIPImageProcessor.from_pretrained(clip_dirs["vision"])(images=images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        out = model(pixel_values=pixels)
    expected = {"auto": out.pooler_output, "cls": out.last_hidden_state[:, 0], "mean": out.last_hidden_state.mean(1)}
    for pooling, want in expected.items():
        got = HFVision(HFVision.Config(model=str(clip_dirs["vision"]), pooling=pooling, device="cpu")).embed(images)
        torch.testing.assert_close(got, want)
    dual = HFVision(HFVision.Config(model=str(clip_dirs["dual"]), device="cpu")).embed(images)
    assert dual.shape == (3, 16)  # get_image_features: the projection width


def test_hf_vision_reports_a_missing_model(tmp_path):
    with pytest.raises(ValidationError, match="does not exist"):  # refused with the options, before any lookup
        HFVision.Config(model=str(tmp_path / "none"), device="cpu")
    with pytest.raises(BadInput, match="cannot load"):
        HFVision(HFVision.Config(model=str(tmp_path), device="cpu")).embed([])  # a folder without a model


def write_image_store(path, n_images=5, rows_per_image=2, embeddings=None, ids=None):
    dataset = SyntheticColors(SyntheticColors.Config(n_images=n_images, size=32))
    attrs = {"dataset": "synthetic_colors", "dataset_options": dataset.config.model_dump(mode="json")}
    with StoreWriter(path, width=4, attrs=attrs, with_image_index=True) as writer:
        for k in range(n_images):
            writer.append(np.full((rows_per_image, 4), float(k), dtype=np.float32), image_index=k)
        writer.put("image_ids", np.array(ids or [it.image_id for it in dataset]))
        if embeddings is not None:
            writer.put("embeddings", embeddings)
    return ActivationStore(path)


def test_precomputed_reads_the_store_or_a_side_file(tmp_path):
    values = np.arange(15, dtype=np.float32).reshape(5, 3)
    store = write_image_store(tmp_path / "a.h5", embeddings=values)
    np.testing.assert_array_equal(Precomputed(Precomputed.Config()).store_embeddings(store), values)
    np.save(tmp_path / "side.npy", values * 2)
    np.testing.assert_array_equal(Precomputed(Precomputed.Config(path=tmp_path / "side.npy")).store_embeddings(store), values * 2)
    with h5py.File(tmp_path / "side.h5", "w") as f:
        f["e"] = values[:4]
    with pytest.raises(BadInput, match=r"shape \(4, 3\); expected \(5, D\)"):
        Precomputed(Precomputed.Config(path=tmp_path / "side.h5", dataset="e")).store_embeddings(store)
    bare = write_image_store(tmp_path / "b.h5")
    with pytest.raises(BadInput, match="no 'embeddings' dataset"):
        Precomputed(Precomputed.Config()).store_embeddings(bare)


def test_embeddings_are_computed_once_per_image_set_and_cached(tmp_path, registered, monkeypatch):
    store = write_image_store(tmp_path / "acts.h5")
    backbone = PixelStats(PixelStats.Config(size=16))
    first = store_embeddings(backbone, store)
    images = [it.image for it in SyntheticColors(SyntheticColors.Config(n_images=5, size=32))]
    np.testing.assert_array_equal(first, backbone.embed(images).numpy())
    assert len(list((tmp_path / "acts.h5.embeddings").glob("*.h5"))) == 1

    monkeypatch.setattr(PixelStats, "embed", lambda self, images: pytest.fail("recomputed a cached image set"))
    np.testing.assert_array_equal(store_embeddings(PixelStats(PixelStats.Config(size=16)), store), first)
    monkeypatch.undo()
    other = store_embeddings(PixelStats(PixelStats.Config(size=24)), store)  # other options: another entry
    assert len(list((tmp_path / "acts.h5.embeddings").glob("*.h5"))) == 2 and not np.array_equal(other, first)


def test_images_that_no_longer_match_the_store_are_refused(tmp_path, registered):
    store = write_image_store(tmp_path / "acts.h5", ids=["synthetic_colors/000000", "elsewhere/1", "x", "y", "z"])
    with pytest.raises(BadInput, match="image 1 of dataset 'synthetic_colors' is 'synthetic_colors/000001'"):
        store_embeddings(PixelStats(PixelStats.Config()), store)
