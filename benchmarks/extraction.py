"""Extraction throughput against the bare model forward, in its own process:
``python -m benchmarks.extraction FAMILY IMAGES THREADS ROUNDS OUT_JSON``.

A tiny random FAMILY model (``hsae_plugins.extractors.tiny_models``) is built offline, IMAGES
``synthetic_colors`` images of ``IMAGE_SIZE`` px are saved as JPEG files, and they are extracted
at the model's last language layer with the ``image_folder`` dataset. Each round times, on the
same images, batch size and threads:

- the bare forward: the extractor's processor (prompt and chat template) and ``model(**inputs)``
  with no hook, through the whole model, on the images already decoded;
- the extraction stage, ``hsae.extract.run_extraction`` writing a fresh store as ``hsae run``
  does. Its rate is taken between its first and last progress report, so model loading, the
  first batch and the store's final assembly are left out of it (and reported apart);
- the stage's parts, each alone: reading the images (the dataset plugin), the extractor's
  ``activations`` (processor, forward stopped after the hooked layer, rows split per image),
  and writing those rows to a store.

All figures are medians over rounds. The model's weights are random and tiny, so its forward
is cheap and the stage's own costs weigh more than they would next to a real model.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

IMAGE_SIZE = 224
BATCH = 8
TEXT_LAYERS = 2
LAYER = f"language.{TEXT_LAYERS - 1}"


def _batches(items: list, size: int = BATCH) -> list[list]:
    """``items`` in batches of ``size`` (the last one shorter)."""
    return [items[start:start + size] for start in range(0, len(items), size)]


class ExtractionBench:
    """One tiny model, its extractor and one set of images; each method times one pass."""

    def __init__(self, family: str, images: int, folder: Path):
        from hsae import registry
        from hsae_plugins.extractors import tiny_models

        self.folder = folder
        model = tiny_models.build(family, folder / "model", text_layers=TEXT_LAYERS)
        (folder / "images").mkdir()
        colors = registry.create("hsae.datasets", {"name": "synthetic_colors", "n_images": images, "size": IMAGE_SIZE})
        for number, item in enumerate(colors):
            item.image.save(folder / "images" / f"{number:06d}.jpg", quality=90)
        self.dataset_spec = {"name": "image_folder", "root": str(folder / "images")}
        self.extractor_spec = {"name": family, "model": str(model), "layer": LAYER, "device": "cpu",
                               "dtype": "float32", "batch_size": BATCH}
        self.dataset = registry.create("hsae.datasets", self.dataset_spec)
        self.images = [item.image for item in self.dataset]
        self.extractor = registry.create("hsae.extractors", self.extractor_spec)
        self.extractor.load()
        self.stores = 0
        self.bare_forward()  # warm-up of both forwards
        self.activations()

    def bare_forward(self) -> float:
        """Seconds for processor + whole-model forward over all images, no hook: the extractor's
        own model and inputs (``_model``, ``_inputs``), so both forwards see the same tensors."""
        model, inputs = self.extractor._model, self.extractor._inputs
        started = time.perf_counter()
        with torch.inference_mode():
            for batch in _batches(self.images):
                model(**inputs(batch))
        return time.perf_counter() - started

    def activations(self) -> tuple[float, list[torch.Tensor]]:
        """Seconds for the extractor's activations over all images, and the per-image rows."""
        rows: list[torch.Tensor] = []
        started = time.perf_counter()
        for batch in _batches(self.images):
            rows.extend(self.extractor.activations(batch))
        return time.perf_counter() - started, rows

    def reading_images(self) -> float:
        """Seconds for the dataset plugin to read and decode all images."""
        started = time.perf_counter()
        for _ in self.dataset:
            pass
        return time.perf_counter() - started

    def store_write(self, rows: list[torch.Tensor]) -> float:
        """Seconds to append ``rows`` image by image to a fresh store, committing as often as the
        stage does by default (``extract.chunk_images``); the store's creation and final assembly
        are left out, as they are from the stage's rate."""
        from hsae.extract import ExtractConfig
        from hsae.store import StoreWriter

        every = ExtractConfig.model_fields["chunk_images"].default
        with StoreWriter(self._fresh_store(), width=rows[0].shape[1], with_image_index=True) as writer:
            started = time.perf_counter()
            for number, image_rows in enumerate(rows):
                writer.append(image_rows, image_index=number)
                if (number + 1) % every == 0:
                    writer.commit()
            return time.perf_counter() - started

    def stage(self) -> dict:
        """``run_extraction`` into a fresh store: its steady rate between its first and last
        progress report, the time before the first (loading, first batch) and after the last."""
        from hsae.extract import run_extraction

        reports: list[tuple[float, int]] = []
        started = time.perf_counter()
        summary = run_extraction({"extractor": self.extractor_spec, "dataset": self.dataset_spec},
                                 self._fresh_store(), lambda done, total: reports.append((time.perf_counter(), done)))
        ended = time.perf_counter()
        (first, first_done), (last, last_done) = reports[0], reports[-1]
        return {"images_per_s": (last_done - first_done) / (last - first), "before_first_report_s": first - started,
                "after_last_report_s": ended - last, "rows": summary.rows}

    def _fresh_store(self) -> Path:
        self.stores += 1
        return self.folder / f"store{self.stores}.h5"


def one_round(bench: ExtractionBench) -> dict[str, float]:
    """Every measurement once: images/s of each pass, the stage's fixed costs, and the ratio."""
    images = len(bench.images)
    seconds, rows = bench.activations()
    stage = bench.stage()
    bare = images / bench.bare_forward()
    return {"bare_forward": bare, "extraction": stage["images_per_s"], "ratio": stage["images_per_s"] / bare,
            "reading_images": images / bench.reading_images(), "activations": images / seconds,
            "store_write": images / bench.store_write(rows), "rows_per_image": stage["rows"] / images,
            "before_first_report_s": stage["before_first_report_s"], "after_last_report_s": stage["after_last_report_s"]}


def run_rounds(family: str, images: int, threads: int, rounds: int) -> dict:
    """Medians over ``rounds`` rounds (the ratio: the median of each round's ratio)."""
    if images < 2 * BATCH:
        raise SystemExit(f"the extraction benchmark needs at least {2 * BATCH} images (two batches), got {images}")
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as folder:
        bench = ExtractionBench(family, images, Path(folder))
        measured = [one_round(bench) for _ in range(rounds)]
    median = {key: statistics.median(m[key] for m in measured) for key in measured[0]}
    rates = ("bare_forward", "extraction", "reading_images", "activations", "store_write")
    return {"family": family, "layer": LAYER, "images": images, "image_size": IMAGE_SIZE, "batch": BATCH,
            "threads": threads, "images_per_s": {key: median[key] for key in rates},
            **{key: value for key, value in median.items() if key not in rates}}


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    family, images, threads, rounds, out = argv or sys.argv[1:]
    Path(out).write_text(json.dumps(run_rounds(family, int(images), int(threads), int(rounds))))


if __name__ == "__main__":
    main()
