"""Hierarchical Mono-Semanticity (HMS), spec §7, Eq. 28-32 (appendix numbering 40-45).

Everything that touches the (images × units) activations streams: ``semantic_vectors`` reads
aligned ``(acts (b, n1), emb (b, D))`` chunks twice and keeps only O(n1 · (D + M)) numbers.
The group statistics never form an (n_child × n_child) cosine matrix: for a parent with
children ``C`` and unit vectors ``ŝ_i``,

    Σ_{i<j ∈ C} cos(s_i, s_j) = (||Σ_{i∈C} ŝ_i||² − Σ_{i∈C} ||ŝ_i||²) / 2,

where ``Σ ||ŝ_i||² = |C|``.

A unit without a representation (a level-1 unit that never fires on the images; a level-l
unit whose children have none, Eq. 32 being undefined for it) is a row of NaN: it takes part
in no pair and is dropped from its parent's ``C(k)`` before the ``|C(k)| ≥ 2`` test (spec §7).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from hsae.errors import BadInput

ChunkSource = Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]
Weighting = Literal["all", "top_m"]
WEIGHTINGS: tuple[str, ...] = ("all", "top_m")
IntArray = torch.Tensor | np.ndarray | Sequence[int]


# --------------------------------------------------------------------------- semantic vectors


def _checked_chunks(
    chunks: ChunkSource, pass_no: int, widths: list[int]
) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """Yield the chunks of one pass as float tensors, checking shapes (``widths`` = [n1, D] once known)."""
    first_image = 0
    for chunk_no, (acts, emb) in enumerate(chunks()):
        where = f"HMS pass {pass_no}, chunk {chunk_no} (images {first_image}..)"
        if not isinstance(acts, torch.Tensor) or not isinstance(emb, torch.Tensor) or acts.ndim != 2 or emb.ndim != 2:
            raise BadInput(f"{where}: expected two 2-D tensors (acts (b, n1), emb (b, D))")
        if acts.shape[0] != emb.shape[0]:
            raise BadInput(f"{where}: acts has {acts.shape[0]} rows but emb has {emb.shape[0]}; they must be aligned")
        if widths and [acts.shape[1], emb.shape[1]] != widths:
            raise BadInput(
                f"{where}: got n1={acts.shape[1]}, D={emb.shape[1]}, earlier chunks had n1={widths[0]}, D={widths[1]}"
            )
        widths[:] = [acts.shape[1], emb.shape[1]]
        dtype = torch.promote_types(torch.promote_types(acts.dtype, emb.dtype), torch.float32)
        acts, emb = acts.to(dtype), emb.to(dtype)
        for name, values in (("acts", acts), ("emb", emb)):
            finite_rows = torch.isfinite(values).all(dim=1)
            if not bool(finite_rows.all()):
                bad = first_image + int(torch.nonzero(~finite_rows)[0])
                raise BadInput(f"{where}: {name} of image {bad} holds a NaN or an infinity")
        first_image += acts.shape[0]
        yield acts, emb


def _min_max(chunks: ChunkSource, widths: list[int]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Pass 1 of Eq. 28: per-unit ``min_m a_i(m)`` and ``max_m a_i(m)``; also the image count."""
    lo = hi = None
    n_images = 0
    for acts, _ in _checked_chunks(chunks, 1, widths):
        if acts.shape[0] == 0:
            continue
        chunk_lo, chunk_hi = acts.amin(dim=0), acts.amax(dim=0)
        lo = chunk_lo if lo is None else torch.minimum(lo, chunk_lo)
        hi = chunk_hi if hi is None else torch.maximum(hi, chunk_hi)
        n_images += acts.shape[0]
    if lo is None or hi is None:
        raise BadInput("HMS: the chunk source yielded no images")
    return lo, hi, n_images


def _merge_top(
    top_values: torch.Tensor, top_images: torch.Tensor, acts: torch.Tensor, first_image: int, m: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep each unit's ``m`` largest activations among its kept ones and a new chunk.

    Tie rule: among equal activations the image that comes first in the stream wins. The
    candidate columns are in stream order (kept images, all earlier, in stream order, then
    the chunk's), so ties at the m-th value are settled by their column rank.
    """
    candidates = torch.cat([top_values, acts.T], dim=1)
    k = min(m, candidates.shape[1])
    kth = torch.topk(candidates, k, dim=1, sorted=False).values.amin(dim=1, keepdim=True)
    above = candidates > kth
    tied = candidates == kth
    room = k - above.sum(dim=1, keepdim=True, dtype=torch.int32)
    keep = above | (tied & (torch.cumsum(tied, dim=1, dtype=torch.int32) <= room))
    columns = torch.nonzero(keep)[:, 1].view(-1, k)  # exactly k per unit, ascending
    kept_before = top_values.shape[1]
    from_top = top_images.gather(1, columns.clamp(max=max(kept_before - 1, 0))) if kept_before else columns
    images = torch.where(columns < kept_before, from_top, first_image + columns - kept_before)
    return candidates.gather(1, columns), images


def _top_images(chunks: ChunkSource, m: int, widths: list[int]
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Pass 1 of ``top_m``: per unit the stream index of its ``m`` top images, a mask of those
    strictly above the unit's minimum (images at the minimum carry no weight), the unit's
    maximum, the image count."""
    lo = top_values = top_images = None
    n_images = 0
    for acts, _ in _checked_chunks(chunks, 1, widths):
        if acts.shape[0] == 0:
            continue
        if top_values is None or top_images is None:
            top_values = acts.new_empty(acts.shape[1], 0)
            top_images = torch.empty(acts.shape[1], 0, dtype=torch.int64, device=acts.device)
        lo = acts.amin(dim=0) if lo is None else torch.minimum(lo, acts.amin(dim=0))
        top_values, top_images = _merge_top(top_values, top_images, acts, n_images, m)
        n_images += acts.shape[0]
    if lo is None or top_values is None or top_images is None:
        raise BadInput("HMS: the chunk source yielded no images")
    return top_images, top_values > lo[:, None], top_values.amax(dim=1), n_images


def _indicator(acts: torch.Tensor, top_images: torch.Tensor, counted: torch.Tensor, first_image: int) -> torch.Tensor:
    """``w[n, i] = 1`` where chunk image n is one of unit i's counted top images, else 0; (b, n1)."""
    in_chunk = counted & (top_images >= first_image) & (top_images < first_image + acts.shape[0])
    units, slots = torch.nonzero(in_chunk, as_tuple=True)
    weights = acts.new_zeros(acts.shape)
    weights[top_images[units, slots] - first_image, units] = 1.0
    return weights


def semantic_vectors(
    chunks: ChunkSource,
    *,
    weighting: Weighting = "all",
    top_m: int = 10,
    eps: float = 1e-8,
    alive: torch.Tensor | None = None,
) -> torch.Tensor:
    """Semantic vector ``s_i ∈ R^D`` of every alive level-1 unit, streamed in two passes (spec §7).

    ``chunks()`` must return a fresh iterator over the same aligned ``(acts (b, n1), emb (b, D))``
    chunks, in the same order, on each call. ``weighting="all"`` is Eq. 28-29 (40-41):
    ``ã_i(n) = (a_i(n) − min a_i) / (max a_i − min a_i + ε)``, ``s_i = Σ ã_i(n) e_n / (Σ ã_i(n) + ε)``.
    ``weighting="top_m"`` **[hsae]** is the plain mean of ``e_n`` over the ``top_m`` images with the
    largest ``a_i(n)`` (earlier image first on ties), leaving out images at the unit's minimum.

    ``alive`` (n1,) bool says which units have a representation; by default those with
    ``a_i(n) > 0`` on some image. A unit that is not alive gets a row of NaN (it has no
    ``s_i``); an alive unit whose activation does not vary (``max − min ≤ ε``, or no image above
    its minimum for ``top_m``) gets uniform weights: the mean embedding. Returns ``(n1, D)`` in
    the inputs' float dtype.
    """
    if weighting not in WEIGHTINGS:
        raise BadInput(f"HMS: weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    if not eps > 0:
        raise BadInput(f"HMS: eps must be > 0, got {eps}")
    if weighting == "top_m" and (not isinstance(top_m, int) or top_m < 1):
        raise BadInput(f"HMS: top_m must be a positive integer, got {top_m!r}")
    widths: list[int] = []
    if weighting == "all":
        lo, hi, n_images = _min_max(chunks, widths)
        scale = 1.0 / (hi - lo + eps)
        constant = hi - lo <= eps
    else:
        top_images, counted, hi, n_images = _top_images(chunks, top_m, widths)
        constant = ~counted.any(dim=1)
    if alive is None:
        alive = hi > 0
    elif not isinstance(alive, torch.Tensor) or alive.dtype != torch.bool or tuple(alive.shape) != (hi.shape[0],):
        raise BadInput(f"HMS: alive must be a bool tensor of shape ({hi.shape[0]},) (one entry per unit)")
    weighted_sum = weight_total = embedding_sum = None
    seen = 0
    for acts, emb in _checked_chunks(chunks, 2, widths):
        if weighted_sum is None or weight_total is None or embedding_sum is None:
            weighted_sum = emb.new_zeros(acts.shape[1], emb.shape[1])
            weight_total = acts.new_zeros(acts.shape[1])
            embedding_sum = emb.new_zeros(emb.shape[1])
        if weighting == "all":
            weights = (acts - lo).mul_(scale)
        else:
            weights = _indicator(acts, top_images, counted, seen)
        weighted_sum.addmm_(weights.T, emb)
        weight_total += weights.sum(dim=0)
        embedding_sum += emb.sum(dim=0)
        seen += acts.shape[0]
    if seen != n_images or weighted_sum is None or weight_total is None or embedding_sum is None:
        raise BadInput(
            f"HMS: the chunk source gave {n_images} images on pass 1 and {seen} on pass 2; "
            "`chunks` must return a fresh iterator over the same images on every call"
        )
    if weighting == "all":
        vectors = weighted_sum / (weight_total + eps)[:, None]
    else:
        vectors = weighted_sum / weight_total.clamp(min=1.0)[:, None]
    alive = alive.to(vectors.device)
    vectors[constant.to(vectors.device)] = embedding_sum / n_images
    vectors[~alive] = torch.nan
    return vectors


# --------------------------------------------------------------------------- group statistics


def _parent_index(parents: IntArray, vectors: torch.Tensor, n_parents: int, what: str) -> torch.Tensor:
    """``parents`` as int64 on the vectors' device, checked: one id in −1..n_parents−1 per child."""
    n_child = vectors.shape[0]
    if isinstance(n_parents, bool) or not isinstance(n_parents, int) or n_parents < 0:
        raise BadInput(f"HMS: the number of parents for {what} must be an integer >= 0, got {n_parents!r}")
    index = torch.as_tensor(np.asarray(parents) if not isinstance(parents, torch.Tensor) else parents)
    if index.dtype.is_floating_point or index.dtype.is_complex or index.dtype == torch.bool:
        raise BadInput(f"HMS: {what} must hold integer parent ids (-1 = no parent), got dtype {index.dtype}")
    if index.ndim != 1 or index.shape[0] != n_child:
        raise BadInput(f"HMS: {what} must have shape ({n_child},) (one entry per child), got {tuple(index.shape)}")
    index = index.to(device=vectors.device, dtype=torch.int64)
    if index.numel() and (int(index.min()) < -1 or int(index.max()) >= n_parents):
        raise BadInput(
            f"HMS: {what} holds ids in [{int(index.min())}, {int(index.max())}], expected -1 or 0..{n_parents - 1}"
        )
    return index


def _checked_vectors(vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``vectors`` as float64 and the mask of rows that hold a representation (a row of NaN
    holds none); any other NaN or an infinity is bad input."""
    if not isinstance(vectors, torch.Tensor) or vectors.ndim != 2:
        raise BadInput("HMS: semantic vectors must be a 2-D tensor (n_child, D)")
    vectors = vectors.to(torch.float64)
    missing = torch.isnan(vectors)
    has = ~missing.all(dim=1) if vectors.shape[1] else torch.ones(vectors.shape[0], dtype=torch.bool,
                                                                  device=vectors.device)
    if bool(missing[has].any()) or not bool(torch.isfinite(vectors[has]).all()):
        raise BadInput("HMS: semantic vectors hold a NaN or an infinity outside whole NaN rows "
                       "(a row of NaN marks a unit without a representation)")
    return vectors, has


def _unit_rows(vectors: torch.Tensor, has: torch.Tensor) -> torch.Tensor:
    """``ŝ_i = s_i / ||s_i||``; 0 for a zero vector and for a row without a representation."""
    vectors = torch.where(has[:, None], vectors, 0.0)
    norms = vectors.norm(dim=1, keepdim=True)
    return torch.where(norms > 0, vectors / norms.clamp(min=torch.finfo(vectors.dtype).tiny), 0.0)


def _grouped(parents: torch.Tensor, has: torch.Tensor) -> torch.Tensor:
    """The parent ids with the children that have no representation taken out of ``C(k)`` (−1)."""
    return torch.where(has, parents, -1)


def _scores(units: torch.Tensor, parents: torch.Tensor, n_parents: int) -> torch.Tensor:
    """Eq. 31/44 per parent from unit vectors; NaN for parents with fewer than two children.

    Children without a parent are summed into a spare row ``n_parents`` that is dropped.
    """
    target = torch.where(parents >= 0, parents, n_parents)
    counts = torch.bincount(target, minlength=n_parents + 1)[:n_parents].to(torch.float64)
    sums = units.new_zeros(n_parents + 1, units.shape[1]).index_add_(0, target, units)[:n_parents]
    squares = torch.bincount(target, weights=units.pow(2).sum(dim=1), minlength=n_parents + 1)[:n_parents]
    pairs = counts * (counts - 1)
    return torch.where(pairs > 0, (sums.pow(2).sum(dim=1) - squares) / pairs.clamp(min=1), torch.nan)


def parent_hms(vectors: torch.Tensor, parents: IntArray, n_parents: int) -> torch.Tensor:
    """HMS(k) for every parent k = 0..n_parents−1 (Eq. 31/44): the mean cosine over unordered
    pairs of its children; NaN where a parent has fewer than two children. float64, (n_parents,)."""
    vectors, has = _checked_vectors(vectors)
    index = _grouped(_parent_index(parents, vectors, n_parents, "parents"), has)
    return _scores(_unit_rows(vectors, has), index, n_parents)


def children_mean(vectors: torch.Tensor, parents: IntArray, n_parents: int) -> torch.Tensor:
    """Eq. 32: ``s^l_k = mean_{i ∈ C(k)} s^{l−1}_i`` over the children that have a representation;
    a row of NaN (no representation) for a parent without such children."""
    vectors, has = _checked_vectors(vectors)
    index = _grouped(_parent_index(parents, vectors, n_parents, "parents"), has)
    grouped = index >= 0
    sums = vectors.new_zeros(n_parents, vectors.shape[1]).index_add_(0, index[grouped], vectors[grouped])
    counts = torch.bincount(index[grouped], minlength=n_parents)
    means = sums / counts.clamp(min=1)[:, None]
    means[counts == 0] = torch.nan
    return means


# --------------------------------------------------------------------------- report


def _json_float(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


@dataclass(frozen=True)
class HmsReport:
    """HMS of one level: parents are the level-``level`` units, children those of level−1.

    Summary statistics run over ``P`` = parents with at least two children. ``null_mean`` and
    ``null_std`` are the mean and (population) standard deviation, across ``null_draws`` random
    partitions with the same children counts, of the mean HMS over ``P``. ``per_parent`` holds
    HMS(k) for every level-``level`` unit, NaN outside ``P``. Children counts leave out the
    children without a representation (``n_unrepresented`` of those have a parent).
    """

    level: int
    n_units: int
    n_parents: int
    mean: float
    median: float
    min: float
    max: float
    children_count_histogram: dict[int, int]
    n_orphans: int
    n_unrepresented: int
    null_mean: float
    null_std: float
    null_draws: int
    null_seed: int
    per_parent: np.ndarray

    def to_dict(self, *, per_parent: bool = True) -> dict:
        """Plain JSON-able data: NaN becomes ``None``, histogram keys become strings."""
        out = {
            "level": self.level,
            "n_units": self.n_units,
            "n_parents": self.n_parents,
            "mean": _json_float(self.mean),
            "median": _json_float(self.median),
            "min": _json_float(self.min),
            "max": _json_float(self.max),
            "children_count_histogram": {str(k): v for k, v in self.children_count_histogram.items()},
            "n_orphans": self.n_orphans,
            "n_unrepresented": self.n_unrepresented,
            "null_mean": _json_float(self.null_mean),
            "null_std": _json_float(self.null_std),
            "null_draws": self.null_draws,
            "null_seed": self.null_seed,
        }
        if per_parent:
            out["per_parent"] = [_json_float(v) for v in self.per_parent.tolist()]
        return out


def _null_means(units: torch.Tensor, parents: torch.Tensor, n_parents: int, draws: int, seed: int) -> np.ndarray:
    """Mean HMS over P for ``draws`` random partitions: the parent labels of the children that
    have a parent are shuffled, which keeps every parent's children count (the null of §7)."""
    generator = torch.Generator().manual_seed(seed)
    has = parents >= 0
    labels = parents[has]
    means = []
    for _ in range(draws):
        shuffled = parents.clone()
        shuffled[has] = labels[torch.randperm(labels.numel(), generator=generator).to(labels.device)]
        scores = _scores(units, shuffled, n_parents)
        means.append(float(torch.nanmean(scores)))  # NaN when no parent has two children
    return np.asarray(means, dtype=np.float64)


def hms_report(
    vectors: torch.Tensor,
    parents: IntArray,
    n_parents: int,
    *,
    level: int = 2,
    null_draws: int = 20,
    seed: int = 0,
) -> HmsReport:
    """HMS of the grouping ``parents`` (child → parent id, −1 = none) of ``vectors`` (Eq. 31, 44-45)."""
    if null_draws < 0:
        raise BadInput(f"HMS: null_draws must be >= 0, got {null_draws}")
    vectors, represented = _checked_vectors(vectors)
    given = _parent_index(parents, vectors, n_parents, f"parents of level {level}")
    index = _grouped(given, represented)
    units = _unit_rows(vectors, represented)
    scores = _scores(units, index, n_parents).cpu().numpy()
    has = index >= 0
    counts = torch.bincount(index[has], minlength=n_parents).cpu().numpy()
    sizes, how_many = np.unique(counts, return_counts=True)
    in_p = scores[~np.isnan(scores)]
    null = _null_means(units, index, n_parents, null_draws, seed)
    empty = in_p.size == 0
    null_defined = null.size > 0 and not empty
    return HmsReport(
        level=level,
        n_units=n_parents,
        n_parents=int(in_p.size),
        mean=np.nan if empty else float(in_p.mean()),
        median=np.nan if empty else float(np.median(in_p)),
        min=np.nan if empty else float(in_p.min()),
        max=np.nan if empty else float(in_p.max()),
        children_count_histogram={int(s): int(c) for s, c in zip(sizes, how_many)},
        n_orphans=int((given < 0).sum()),
        n_unrepresented=int(((given >= 0) & ~represented).sum()),
        null_mean=float(null.mean()) if null_defined else np.nan,
        null_std=float(null.std()) if null_defined else np.nan,
        null_draws=null_draws,
        null_seed=seed,
        per_parent=scores,
    )


def hms_by_level(
    level1_vectors: torch.Tensor,
    parents: Sequence[IntArray],
    *,
    top_level_size: int,
    null_draws: int = 20,
    seed: int = 0,
) -> list[HmsReport]:
    """One report per level l = 2..L. ``parents[l−2]`` is π_l (length n_{l−1}); n_l is the length
    of π_{l+1}, and ``top_level_size`` is n_L. Level-l vectors are Eq. 32's children means
    (NaN rows, no representation, for units without represented children)."""
    if not parents:
        raise BadInput("HMS: need at least one parent array (π_2)")
    vectors, _ = _checked_vectors(level1_vectors)
    sizes = [len(p) for p in parents[1:]] + [top_level_size]
    reports = []
    for level, (assignment, n_parents) in enumerate(zip(parents, sizes), start=2):
        reports.append(hms_report(vectors, assignment, n_parents, level=level, null_draws=null_draws, seed=seed))
        if level - 1 < len(parents):
            vectors = children_mean(vectors, assignment, n_parents)
    return reports
