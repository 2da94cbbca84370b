"""The extraction stage: store layout, pooling, bad files, and resuming after kill -9."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hsae import __version__
from hsae.errors import BadInput
from hsae.extract import check_extract_config, run_extraction
from hsae.interfaces.extractor import PAPER_PROMPT
from hsae.store import ActivationStore
from hsae_plugins.datasets.synthetic_colors import SyntheticColors
from hsae_plugins.extractors.llava import LlavaExtractor
from hsae_plugins.extractors.qwen3_vl import Qwen3VLExtractor

QUIET = lambda done, total: None  # noqa: E731


def section(model_dir, layer="vision.1", n_images=6, **extra):
    extractor = {"name": "qwen3_vl", "model": str(model_dir), "layer": layer, "device": "cpu", "batch_size": 4}
    extractor.update(extra.pop("extractor", {}))
    dataset = extra.pop("dataset", {"name": "synthetic_colors", "n_images": n_images, "size": 64})
    return {"extractor": extractor, "dataset": dataset, **extra}


def read_store(path):
    with ActivationStore(path) as store:
        return {
            "rows": store.rows(0, store.n_rows),
            "image_index": store.image_index(),
            "ids": list(store.read("image_ids")),
            "labels": list(store.read("labels")) if store.has("labels") else None,
            "attrs": store.attrs,
        }


def test_the_store_holds_each_image_s_tokens_with_its_index_id_and_label(tiny_model_dir, registered, tmp_path):
    model_dir = tiny_model_dir("qwen3_vl")
    summary = run_extraction(section(model_dir), tmp_path / "acts.h5", QUIET)
    stored = read_store(tmp_path / "acts.h5")
    # 64×64 images: a 4×4 grid of 16-px patches each, in the vision blocks.
    assert summary.images == 6 and summary.rows == 6 * 16
    np.testing.assert_array_equal(stored["image_index"], np.repeat(np.arange(6), 16))
    dataset = SyntheticColors(SyntheticColors.Config(n_images=6, size=64))
    items = list(dataset)
    assert stored["ids"] == [it.image_id for it in items] and stored["labels"] == [it.label for it in items]
    extractor = Qwen3VLExtractor(Qwen3VLExtractor.Config(model=str(model_dir), layer="vision.1", device="cpu"))
    expected = torch.cat(extractor.activations([it.image for it in items[:4]]) + extractor.activations([it.image for it in items[4:]]))
    np.testing.assert_array_equal(stored["rows"], expected.numpy())
    attrs = stored["attrs"]
    assert attrs["model"] == str(model_dir) and attrs["layer"] == "model.visual.blocks.1"
    assert attrs["prompt"] == PAPER_PROMPT and attrs["pooling"] == "none" and attrs["dataset"] == "synthetic_colors"
    assert attrs["dataset_options"]["n_images"] == 6 and attrs["hsae_version"] == __version__
    assert not (tmp_path / "acts.h5.extract.json").exists()
    again = run_extraction(section(model_dir), tmp_path / "acts.h5", QUIET)  # finished: left alone
    assert (again.images, again.rows) == (6, 96)


@pytest.mark.parametrize("pooling", ["mean", "max", "cls"])
def test_pooling_writes_one_row_per_image(tiny_model_dir, registered, tmp_path, pooling):
    model_dir = tiny_model_dir("llava")
    spec = section(model_dir, layer="vision.0", n_images=3, pooling=pooling, limit=2, extractor={"name": "llava"})
    run_extraction(spec, tmp_path / "pooled.h5", QUIET)
    stored = read_store(tmp_path / "pooled.h5")
    extractor = LlavaExtractor(LlavaExtractor.Config(model=str(model_dir), layer="vision.0", device="cpu"))
    tokens = extractor.activations([it.image for it in list(SyntheticColors(SyntheticColors.Config(n_images=2, size=64)))])
    want = {"mean": lambda t: t.mean(0), "max": lambda t: t.amax(0), "cls": lambda t: t[0]}[pooling]
    np.testing.assert_allclose(stored["rows"], torch.stack([want(t) for t in tokens]).numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(stored["image_index"], [0, 1])


def test_cls_pooling_needs_a_class_token_and_a_refused_run_leaves_nothing_behind(tiny_model_dir, registered, tmp_path):
    with pytest.raises(BadInput, match="class token"):
        run_extraction(section(tiny_model_dir("qwen3_vl"), pooling="cls"), tmp_path / "x.h5", QUIET)
    assert list(tmp_path.iterdir()) == []
    assert run_extraction(section(tiny_model_dir("qwen3_vl"), pooling="mean"), tmp_path / "x.h5", QUIET).rows == 6


def test_a_corrupt_jpeg_is_reported_and_skipped_and_odd_images_extract(tiny_model_dir, registered, tmp_path):
    folder = tmp_path / "images" / "things"
    folder.mkdir(parents=True)
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (9, 9, 9)).save(buffer, "JPEG")
    (folder / "a_corrupt.jpg").write_bytes(buffer.getvalue()[:300])
    Image.new("L", (96, 64), 120).save(folder / "b_gray.png")
    Image.new("RGB", (1, 1), (255, 0, 0)).save(folder / "c_one_pixel.png")
    Image.new("RGB", (128, 64), (0, 0, 255)).save(folder / "d_plain.jpg")
    dataset = {"name": "image_folder", "root": str(tmp_path / "images")}
    summary = run_extraction(section(tiny_model_dir("qwen3_vl"), dataset=dataset), tmp_path / "folder.h5", QUIET)
    assert [image_id for image_id, _ in summary.skipped] == ["things/a_corrupt.jpg"]
    stored = read_store(tmp_path / "folder.h5")
    assert stored["ids"] == ["things/b_gray.png", "things/c_one_pixel.png", "things/d_plain.jpg"]
    assert stored["labels"] == ["things"] * 3
    # 16-px patches of sides rounded to multiples of 32: 96×64 → 6·4; 128×64 → 8·4; the 1×1 image is
    # scaled up to Qwen's minimum area of 56² px, i.e. to 64×64 → 4·4.
    assert np.bincount(stored["image_index"]).tolist() == [6 * 4, 4 * 4, 8 * 4]
    with ActivationStore(tmp_path / "folder.h5") as store:
        assert list(store.read("skipped_image_ids")) == ["things/a_corrupt.jpg"]


def test_the_section_is_checked_without_running(tiny_model_dir, registered):
    good = section("no-model/needed")  # a hub id: validating does not look it up
    assert check_extract_config(good).pooling == "none"
    with pytest.raises(BadInput, match="extract.chunk_imgs: unknown key"):
        check_extract_config({**good, "chunk_imgs": 3})
    with pytest.raises(BadInput, match="extract.extractor: .*layer"):
        check_extract_config({**good, "extractor": {"name": "qwen3_vl", "model": "m", "layer": "block 23"}})
    with pytest.raises(BadInput, match="extract.dataset: .*no plugin named 'nope'"):
        check_extract_config({**good, "dataset": {"name": "nope"}})


KILLABLE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from hsae.extract import run_extraction
    from hsae_plugins.datasets.synthetic_colors import SyntheticColors

    item = SyntheticColors.item
    SyntheticColors.item = lambda self, i: (time.sleep(0.05), item(self, i))[1]  # slow enough to be killed mid-run
    spec, store, report = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])

    def progress(done, total):
        report.write_text(str(done))

    run_extraction(__import__("json").loads(spec), store, progress)
    """
)


def reported(report: Path) -> int:
    """The child's last count; read once, since the child truncates and rewrites the file."""
    text = report.read_text() if report.exists() else ""
    return int(text) if text.strip() else 0


def test_kill_9_then_rerun_gives_the_uninterrupted_store(tiny_model_dir, registered, tmp_path):
    spec = section(tiny_model_dir("qwen3_vl"), layer="language.1", n_images=30, chunk_images=1,
                   extractor={"batch_size": 3, "tokens": "all"})
    run_extraction(spec, tmp_path / "whole.h5", QUIET)

    report = tmp_path / "done.txt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(registered), *sys.path])}
    child = subprocess.Popen([sys.executable, "-c", KILLABLE, json.dumps(spec), str(tmp_path / "killed.h5"), str(report)], env=env)
    deadline = time.monotonic() + 120
    while reported(report) < 7:
        assert child.poll() is None, "the extraction ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert not (tmp_path / "killed.h5").exists()

    with pytest.raises(BadInput, match="different source"):
        run_extraction({**spec, "pooling": "mean"}, tmp_path / "killed.h5", QUIET)
    summary = run_extraction(spec, tmp_path / "killed.h5", QUIET)
    assert 7 <= summary.resumed_at < 30
    whole, resumed = read_store(tmp_path / "whole.h5"), read_store(tmp_path / "killed.h5")
    np.testing.assert_array_equal(resumed["image_index"], whole["image_index"])
    np.testing.assert_array_equal(resumed["rows"], whole["rows"])
    assert resumed["ids"] == whole["ids"] and resumed["labels"] == whole["labels"]
    assert resumed["attrs"] == whole["attrs"]


class Interrupt(Exception):
    pass


def test_an_interrupted_run_resumes_inside_a_batch_without_duplicates(tiny_model_dir, registered, tmp_path):
    # Images of different sizes make prompts of different lengths, so a batch's padding (and
    # with it the last bits of a language layer's output) depends on which images share it.
    folder = tmp_path / "images" / "noise"
    folder.mkdir(parents=True)
    for i in range(10):
        Image.effect_noise((32 * (1 + i % 4), 32 * (1 + i * 7 % 3)), 30).convert("RGB").save(folder / f"{i}.png")
    dataset = {"name": "image_folder", "root": str(tmp_path / "images")}
    spec = section(tiny_model_dir("qwen3_vl"), layer="language.1", dataset=dataset, chunk_images=100,
                   extractor={"batch_size": 3, "tokens": "all"})
    run_extraction(spec, tmp_path / "whole.h5", QUIET)

    def interrupt(done, total):
        if done >= 6:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_extraction(spec, tmp_path / "cut.h5", interrupt)
    summary = run_extraction(spec, tmp_path / "cut.h5", QUIET)
    # On the way out the writer committed every image but the last one buffered: 5 of 6.
    assert summary.resumed_at == 5
    whole, resumed = read_store(tmp_path / "whole.h5"), read_store(tmp_path / "cut.h5")
    np.testing.assert_array_equal(resumed["image_index"], whole["image_index"])
    np.testing.assert_array_equal(resumed["rows"], whole["rows"])
    assert resumed["ids"] == whole["ids"]
