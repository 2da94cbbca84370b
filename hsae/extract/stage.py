"""The extraction stage: images → extractor → activation store, resumable after a kill.

Rows are written image by image with ``image_index`` = the image's number in dataset order
(unreadable images left out). The store is committed at batch boundaries, at least every
``chunk_images`` images. A rerun after a kill continues at the first image the store does
not hold; it recomputes that image's whole batch (the batches are fixed:
``[b·B, (b+1)·B)``) and appends only the missing images, so every image is computed in the
same batch as in an uninterrupted run and the finished store is identical to one.

While a store is unfinished, ``<store>.extract.json`` records what is being extracted; a
rerun with a different model, layer, dataset, pooling or limit is refused instead of mixing
two sources in one store. It is removed when the store is finished.

Run by m processes (``hsae.distributed``, docs/distributed.md), process i computes the batches
b with b mod m = i (each image still in its own batch) into a store of its own,
``<store>.part-i-of-m.h5``, resumable like any store; the first process then assembles the
parts in image order into the store, identical to the one a single process writes, and
removes them.
"""

from __future__ import annotations

import itertools
import json
from collections import deque
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hsae import distributed, registry
from hsae.errors import BadInput
from hsae.extract.config import ExtractConfig, check_extract_config
from hsae.extract.progress import extraction_meter
from hsae.interfaces.dataset import ImageDataset, Progress
from hsae.interfaces.extractor import Extractor
from hsae.store import ActivationStore, StoreWriter
from hsae.store.layout import IMAGE_IDS, parts_folder

LABELS = "labels"
SKIPPED = "skipped_image_ids"
_RUNTIME_OPTIONS = ("batch_size", "device")  # change how, not what, is extracted


@dataclass
class ExtractionSummary:
    """What one call of :func:`run_extraction` did."""

    store: Path
    images: int
    rows: int
    resumed_at: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


def pool_rows(rows: torch.Tensor, pooling: str) -> torch.Tensor:
    """One image's rows (n, d) → (n, d) for ``none``, else (1, d): the mean, the max, or the first (class) row."""
    if pooling == "none":
        return rows
    if pooling == "mean":
        return rows.mean(0, keepdim=True)
    if pooling == "max":
        return rows.amax(0, keepdim=True)
    return rows[:1]


def _fingerprint(config: ExtractConfig) -> dict[str, Any]:
    extractor = {k: v for k, v in config.extractor.items() if k not in _RUNTIME_OPTIONS}
    return json.loads(json.dumps(
        {"extractor": extractor, "dataset": config.dataset, "pooling": config.pooling, "limit": config.limit,
         "store_dtype": config.store_dtype},
        sort_keys=True, default=str,
    ))


def _marker(store: Path) -> Path:
    return store.with_name(store.name + ".extract.json")


def _check_same_source(store: Path, fingerprint: dict[str, Any]) -> None:
    """Refuse to resume an unfinished store that is being extracted from another source."""
    marker = _marker(store)
    if not (marker.exists() and parts_folder(store).exists()):
        return
    recorded = json.loads(marker.read_text())
    if recorded != fingerprint:
        raise BadInput(
            f"{store} is an unfinished extraction of a different source ({marker} records {recorded}); "
            f"resume it with the same extract section, or delete {parts_folder(store).name}/ and {marker.name} to start over"
        )


def _source_attrs(config: ExtractConfig, extractor: Extractor, dataset: ImageDataset) -> dict[str, Any]:
    return {
        **extractor.source(),
        "extractor": config.extractor["name"],
        "pooling": config.pooling,
        "dataset": config.dataset["name"],
        "dataset_options": dataset.config.model_dump(mode="json"),
        "limit": config.limit,
    }


def _finished(store: Path, config: ExtractConfig) -> ExtractionSummary:
    """A finished store is left alone, if it came from the same dataset and pooling."""
    with ActivationStore(store) as finished:
        attrs = finished.attrs
        expected = {"dataset": config.dataset["name"], "pooling": config.pooling}
        found = {key: attrs.get(key) for key in expected}
        if found != expected:
            raise BadInput(f"{store} already holds a finished store of another source ({found}); choose another path")
        return ExtractionSummary(store, finished.n_images or 0, finished.n_rows, resumed_at=finished.n_images or 0)


def _write(writer: StoreWriter, extractor: Extractor, dataset: ImageDataset, config: ExtractConfig,
           progress: Progress | None, part: tuple[int, int] = (0, 1)) -> tuple[list[str], list[str | None]]:
    """Extract the images the store lacks, of the batches b with b mod m = i for ``part=(i, m)``;
    return every image's id and label in order."""
    batch = extractor.config.batch_size
    index, parts = part
    start = writer.images_done
    ids: list[str] = []
    labels: list[str | None] = []
    numbers: deque[int] = deque()  # the image number of each item handed to the extractor

    def remaining():
        for number, item in enumerate(itertools.islice(iter(dataset), config.limit)):
            ids.append(item.image_id)
            labels.append(item.label)
            if (number // batch) % parts == index and number >= start - start % batch:
                numbers.append(number)
                yield item

    def share(n_images: int, below: int) -> int:  # of the first n_images, those of this part numbered below ``below``
        return sum(max(0, min(n_images, below, b * batch + batch) - b * batch)
                   for b in range(index, -(-n_images // batch), parts))

    total = len(dataset) if config.limit is None else min(len(dataset), config.limit)
    with extraction_meter(share(total, total), share(total, start), progress) as meter:
        since_commit = 0
        for items, activations in extractor.iter_activations(remaining()):
            images = tokens = 0
            for item, rows in zip(items, activations):
                number = numbers.popleft()
                if number >= start:
                    if rows.shape[0] == 0:
                        raise BadInput(f"image {item.image_id!r} gave no {extractor.config.tokens} tokens at {extractor.config.layer!r}")
                    writer.append(pool_rows(rows, config.pooling), image_index=number)
                    images, tokens = images + 1, tokens + rows.shape[0]
            since_commit += images
            if since_commit >= config.chunk_images:
                writer.commit()
                since_commit = 0
            meter.advance(images, tokens)
        meter.finish(share(len(ids), len(ids)))
    writer.commit()
    return ids, labels


def run_extraction(config: ExtractConfig | dict, store_path: str | Path, progress: Progress | None = None) -> ExtractionSummary:
    """Write (or finish writing) the activation store at ``store_path`` from the ``extract`` section.

    ``progress(done, total)`` receives image counts; without it a rich bar with images/s
    and tokens/s is shown on stderr. Returns what was done; a finished store is left as is.
    """
    config = check_extract_config(config)
    store = Path(store_path)
    if store.exists():
        return _finished(store, config)
    began = time.monotonic()
    extractor: Extractor = registry.create("hsae.extractors", config.extractor)
    dataset: ImageDataset = registry.create("hsae.datasets", config.dataset)
    fingerprint = _fingerprint(config)
    _check_same_source(store, fingerprint)
    extractor.load()
    if config.pooling == "cls" and not extractor.has_class_token:
        raise BadInput(
            f"extract.pooling: cls needs a layer whose rows start with a class token; {extractor.config.layer!r} "
            f"of {extractor.config.model!r} has none (use mean or max)"
        )
    attrs = _source_attrs(config, extractor, dataset)
    marker = _marker(store)
    rank, parts = distributed.rank(), distributed.world_size()
    if rank == 0:
        marker.write_text(json.dumps(fingerprint, sort_keys=True, indent=1))
    target = store if parts == 1 else part_path(store, rank, parts)
    settings = {"width": extractor.width, "dtype": config.store_dtype, "attrs": attrs, "with_image_index": True}
    resumed_at, skipped = 0, list(getattr(dataset, "skipped", []))
    if not target.exists():  # a part finished before a kill is kept
        with StoreWriter(target, **settings) as writer:
            resumed_at = writer.images_done
            ids, labels = _write(writer, extractor, dataset, config,
                                 progress if rank == 0 else (lambda done, total: None), (rank, parts))
            if not ids:
                raise BadInput(f"extract.dataset {config.dataset['name']!r} yielded no readable images")
            writer.put(IMAGE_IDS, np.array(ids))
            if any(label is not None for label in labels):
                writer.put(LABELS, np.array(["" if label is None else label for label in labels]))
            skipped = list(getattr(dataset, "skipped", []))
            if skipped:
                writer.put(SKIPPED, np.array([image_id for image_id, _ in skipped]))
    if parts > 1:
        distributed.barrier()  # every part is finished
        if rank == 0:
            _assemble_parts(store, [part_path(store, i, parts) for i in range(parts)], settings,
                            extractor.config.batch_size)
        distributed.barrier()  # the store is there
    if rank == 0:
        marker.unlink()
    with ActivationStore(store) as finished:
        images, rows = finished.n_images or 0, finished.n_rows
    return ExtractionSummary(store, images, rows, resumed_at, skipped, time.monotonic() - began)


def part_path(store: Path, index: int, parts: int) -> Path:
    """The store process ``index`` of ``parts`` extracts its batches into."""
    return store.with_name(f"{store.name}.part-{index}-of-{parts}.h5")


def _assemble_parts(store: Path, paths: list[Path], settings: dict, batch: int) -> None:
    """Write the parts' rows into ``store`` batch by batch in image order (batch b from part
    b mod m), with the first part's image ids, labels and skipped ids; then remove the parts.
    A kill in between leaves the store's journal, and a rerun appends what it lacks."""
    sources = [ActivationStore(path) for path in paths]
    try:
        with StoreWriter(store, **settings) as writer:
            first, done = sources[0], writer.images_done
            indexes = [source.image_index() for source in sources]
            n_images = first.n_images or 0
            for b in range(done // batch, -(-n_images // batch)):
                index = indexes[b % len(sources)]
                lo, hi = (int(i) for i in np.searchsorted(index, [max(b * batch, done), b * batch + batch]))
                if hi > lo:
                    writer.append(sources[b % len(sources)].rows(lo, hi), image_index=index[lo:hi])
            for name in (IMAGE_IDS, LABELS, SKIPPED):
                if first.has(name):
                    writer.put(name, first.read(name))
    finally:
        for source in sources:
            source.close()
    for path in paths:
        path.unlink()
