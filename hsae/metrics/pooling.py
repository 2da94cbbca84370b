"""Pool per-token codes into per-image activations, streaming (spec §7, inputs of Eq. 28).

The per-image activation of unit ``i`` is ``a_i(n) = mean_t z_i(t)`` (or ``max_t``) over the
tokens ``t`` of image ``n``. Rows arrive in store order as chunks; the rows of one image are
contiguous but may straddle a chunk boundary. Only the current chunk and one open (not yet
finished) image are held, plus the set of finished image ids that enforces contiguity.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Literal

import numpy as np
import torch

from hsae.errors import BadInput

PoolHow = Literal["mean", "max"]
POOL_HOWS: tuple[str, ...] = ("mean", "max")


def _as_index_tensor(image_index: torch.Tensor | np.ndarray, rows: int, chunk_no: int) -> torch.Tensor:
    index = torch.as_tensor(image_index)
    if index.dtype.is_floating_point or index.dtype.is_complex or index.dtype == torch.bool:
        raise BadInput(f"pooling chunk {chunk_no}: image_index must hold integers, got dtype {index.dtype}")
    if index.ndim != 1 or index.shape[0] != rows:
        raise BadInput(
            f"pooling chunk {chunk_no}: image_index must have shape ({rows},) to match the codes' rows, "
            f"got {tuple(index.shape)}"
        )
    return index.to(torch.int64)


def _float_codes(codes: torch.Tensor, chunk_no: int, width: int | None) -> torch.Tensor:
    if not isinstance(codes, torch.Tensor) or codes.ndim != 2:
        shape = tuple(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__
        raise BadInput(f"pooling chunk {chunk_no}: codes must be a 2-D tensor (rows, latents), got {shape}")
    if width is not None and codes.shape[1] != width:
        raise BadInput(
            f"pooling chunk {chunk_no}: codes have {codes.shape[1]} latents, earlier chunks had {width}"
        )
    return codes.to(torch.promote_types(codes.dtype, torch.float32))


class _OpenImage:
    """The partial reduction (row sum, or running max) of the image whose rows may continue."""

    def __init__(self, image_id: int, value: torch.Tensor, rows: int) -> None:
        self.image_id = image_id
        self.value = value.clone()  # a copy, so that the per-run block of the chunk can be freed
        self.rows = rows

    def pooled(self, how: str) -> torch.Tensor:
        return self.value / self.rows if how == "mean" else self.value


def _reduce_runs(codes: torch.Tensor, run_of_row: torch.Tensor, n_runs: int, how: str) -> torch.Tensor:
    """Per-run sum (for ``mean``) or max of the rows of ``codes``; runs are labelled 0..n_runs-1."""
    out = codes.new_zeros(n_runs, codes.shape[1])
    if how == "mean":
        return out.index_add_(0, run_of_row, codes)
    return out.scatter_reduce_(0, run_of_row[:, None].expand_as(codes), codes, "amax", include_self=False)


def _combine(a: torch.Tensor, b: torch.Tensor, how: str) -> torch.Tensor:
    return a + b if how == "mean" else torch.maximum(a, b)


def _finish(value: torch.Tensor, rows: torch.Tensor, how: str) -> torch.Tensor:
    return value / rows[:, None] if how == "mean" else value


def pool_images(
    chunks: Iterable[tuple[torch.Tensor, torch.Tensor | np.ndarray]],
    how: PoolHow = "mean",
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(image_ids (b,), pooled (b, n))`` for the images finished by each input chunk.

    ``chunks`` yields ``(codes (r, n), image_index (r,))`` in store order. An image id that
    reappears after a different image raises :class:`BadInput` naming the id and its global row.
    Output images keep their first-appearance order; empty input chunks are skipped. Pooled
    values are float32 (float64 when the codes are float64).
    """
    if how not in POOL_HOWS:
        raise BadInput(f"pooling: how must be one of {POOL_HOWS}, got {how!r}")
    open_image: _OpenImage | None = None
    finished: set[int] = set()
    width: int | None = None
    row_offset = 0
    for chunk_no, (raw_codes, raw_index) in enumerate(chunks):
        codes = _float_codes(raw_codes, chunk_no, width)
        width = codes.shape[1]
        index = _as_index_tensor(raw_index, codes.shape[0], chunk_no).to(codes.device)
        if index.numel() == 0:
            continue
        starts = torch.ones_like(index, dtype=torch.bool)
        starts[1:] = index[1:] != index[:-1]
        start_rows = torch.nonzero(starts).flatten()
        run_ids = index[start_rows].tolist()
        run_rows = torch.diff(start_rows, append=start_rows.new_tensor([index.numel()])).to(codes.dtype)
        reduced = _reduce_runs(codes, torch.cumsum(starts, 0) - 1, len(run_ids), how)

        out_ids: list[int] = []
        out_values: list[torch.Tensor] = []
        if open_image is not None and open_image.image_id == run_ids[0]:
            reduced[0] = _combine(open_image.value, reduced[0], how)
            run_rows[0] += open_image.rows
        elif open_image is not None:
            finished.add(open_image.image_id)
            out_ids.append(open_image.image_id)
            out_values.append(open_image.pooled(how)[None])
        for run_no, image_id in enumerate(run_ids):
            if image_id in finished:
                raise BadInput(
                    f"pooling: image id {image_id} reappears at row {row_offset + int(start_rows[run_no])} "
                    "after rows of other images; the rows of one image must be contiguous"
                )
            finished.add(image_id)
        finished.discard(run_ids[-1])

        out_ids.extend(run_ids[:-1])
        out_values.append(_finish(reduced[:-1], run_rows[:-1], how))
        open_image = _OpenImage(run_ids[-1], reduced[-1], int(run_rows[-1]))
        row_offset += index.numel()
        if out_ids:
            yield torch.tensor(out_ids, dtype=torch.int64), torch.cat(out_values)
    if open_image is not None:
        yield torch.tensor([open_image.image_id], dtype=torch.int64), open_image.pooled(how)[None]
