"""What the browser shows of every unit, measured on the run's store: for each level, each
unit's firing rate (share of store rows where its code is > 0), a histogram of its non-zero
code values, its top images (pooled per image when the store has an image index), and its
nearest atoms of the same level by cosine (flagged when they share its parent).

Codes are ``hsae.load``'s: ``encode(x, l)`` on raw store rows, for every level and method.
Everything streams over the store in chunks; the nearest atoms are found a block of rows of
the cosine matrix at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from hsae.store import ActivationStore
from hsae.trained import TrainedHierarchy

CHUNK_ROWS = 4096
HIST_BINS = 16
TOP_IMAGES = 8
NEAREST = 5
COSINE_BLOCK = 2048


@dataclass
class LevelStats:
    """Per unit of one level: firing rate, code histogram over [0, max], top images, nearest atoms."""

    rate: np.ndarray  # (n,)
    max_code: np.ndarray  # (n,) the upper edge of the histogram
    histogram: np.ndarray  # (n, HIST_BINS) counts of non-zero codes
    top_images: list[list[tuple[int, float]]] = field(default_factory=list)  # (image row id, pooled code)
    nearest: list[list[tuple[int, float]]] = field(default_factory=list)  # (unit, cosine)


def _rows(store: ActivationStore, max_rows: int | None):
    limit = store.n_rows if max_rows is None else min(max_rows, store.n_rows)
    for start, block in store.iter_chunks(CHUNK_ROWS):
        if start >= limit:
            return
        yield start, torch.as_tensor(block[: limit - start], dtype=torch.float32)


@torch.no_grad()
def nearest_atoms(atoms: torch.Tensor, k: int = NEAREST) -> tuple[np.ndarray, np.ndarray]:
    """(indices, cosines) (n, k) of each row's k most similar other rows."""
    unit = torch.nn.functional.normalize(atoms.float(), dim=1)
    n = unit.shape[0]
    k = min(k, n - 1)
    idx = np.zeros((n, max(k, 0)), dtype=np.int64)
    cos = np.zeros((n, max(k, 0)), dtype=np.float32)
    if k <= 0:
        return idx, cos
    for start in range(0, n, COSINE_BLOCK):
        sims = unit[start:start + COSINE_BLOCK] @ unit.t()
        rows = torch.arange(sims.shape[0])
        sims[rows, rows + start] = -2.0  # not itself
        values, where = sims.topk(k, dim=1)
        idx[start:start + sims.shape[0]] = where.numpy()
        cos[start:start + sims.shape[0]] = values.numpy()
    return idx, cos


@torch.no_grad()
def level_stats(model: TrainedHierarchy, store: ActivationStore, level: int, max_rows: int | None = None,
                images: bool = True) -> LevelStats:
    """Two passes over the store: code maxima, then rates, histograms and top images."""
    n = model.widths[level - 1]
    max_code = torch.zeros(n)
    for _, x in _rows(store, max_rows):
        max_code = torch.maximum(max_code, model.encode(x, level).max(0).values.clamp_min(0))
    counts = torch.zeros(n * HIST_BINS, dtype=torch.float64)
    fired = torch.zeros(n, dtype=torch.float64)
    index = store.image_index() if images else None
    top_values = torch.full((n, TOP_IMAGES), -1.0)
    top_ids = torch.full((n, TOP_IMAGES), -1, dtype=torch.long)
    rows = 0
    edges = max_code.clamp_min(1e-12)
    for start, x in _rows(store, max_rows):
        z = model.encode(x, level)
        rows += z.shape[0]
        on = z > 0
        fired += on.sum(0).double()
        bins = (z / edges * HIST_BINS).long().clamp_(0, HIST_BINS - 1)
        flat = (torch.arange(n) * HIST_BINS + bins)[on]
        counts.index_add_(0, flat, torch.ones(flat.shape[0], dtype=torch.float64))
        if index is not None:
            top_values, top_ids = _merge_top(top_values, top_ids, z, index[start:start + z.shape[0]])
    stats = LevelStats((fired / max(rows, 1)).numpy(), max_code.numpy(), counts.view(n, HIST_BINS).numpy())
    if index is not None:
        stats.top_images = [[(int(i), float(v)) for i, v in zip(ids, vals) if i >= 0 and v > 0]
                            for ids, vals in zip(top_ids.tolist(), top_values.tolist())]
    stats.nearest = [list(zip(i.tolist(), c.round(4).tolist())) for i, c in zip(*nearest_atoms(model.atoms(level)))]
    return stats


def _merge_top(values: torch.Tensor, ids: torch.Tensor, z: torch.Tensor, image_ids: np.ndarray):
    """Running per-unit top images by mean code over the image's rows (rows of one image are
    adjacent in a store; an image split across two chunks counts as two halves)."""
    image_ids = torch.as_tensor(np.asarray(image_ids), dtype=torch.long)
    unique, inverse = torch.unique_consecutive(image_ids, return_inverse=True)
    pooled = torch.zeros(unique.shape[0], z.shape[1]).index_add_(0, inverse, z)
    pooled /= torch.bincount(inverse).clamp_min(1)[:, None].float()
    k = min(TOP_IMAGES, unique.shape[0])
    new_values, where = pooled.t().topk(k, dim=1)
    all_values = torch.cat([values, new_values], dim=1)
    all_ids = torch.cat([ids, unique[where]], dim=1)
    best, pick = all_values.topk(TOP_IMAGES, dim=1)
    return best, all_ids.gather(1, pick)
