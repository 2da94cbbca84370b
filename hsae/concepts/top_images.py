"""A unit's top training images: image-pooled level-1 codes, streamed over the store.

The activation of atom ``j`` on image ``n`` is ``a_j(n) = mean_t z_j(t)`` over the image's
token rows (``max`` with ``pooling: max``), the inputs of HMS (spec §7). A unit is a set of
atoms given as a column of a membership matrix ``M`` (n₁, U): its score on an image is
``Σ_j M_ju a_j(n)`` (an atom is the unit with one atom; a level-l latent, the atoms beneath
it). :func:`top_images` keeps the ``T`` best images of every unit; :func:`pooled_on` returns
the pooled codes of a few chosen images.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from hsae.intervene.write_back import CodeKind, code_of
from hsae.metrics.pooling import pool_images
from hsae.sae.sae import SAE
from hsae.store import ActivationStore
from hsae.store.layout import IMAGE_IDS

CHUNK_ROWS = 4096


@dataclass(frozen=True)
class Coder:
    """How store rows become level-1 codes: the SAE, the store's scale, the code kind."""

    sae: SAE
    scale: float
    code: CodeKind = "encoder"
    pooling: str = "mean"


@torch.no_grad()
def pooled_codes(store: ActivationStore, coder: Coder) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """``(image numbers (b,), pooled codes (b, n))`` per chunk of finished images, in store order."""
    index = store.image_index()
    device = coder.sae.W_dec.device

    def coded():
        for start, block in store.iter_chunks(CHUNK_ROWS):
            x = torch.as_tensor(block, dtype=torch.float32, device=device) * coder.scale
            rows = np.arange(start, start + x.shape[0])
            yield code_of(coder.sae, x, coder.code), rows if index is None else index[rows]

    for ids, pooled in pool_images(coded(), coder.pooling):
        yield ids.cpu().numpy(), pooled


def image_names(store: ActivationStore) -> list[str]:
    """The id of every image number of the store (its ``image_ids``, else ``image-<n>``)."""
    if store.has(IMAGE_IDS):
        return [str(v.decode() if isinstance(v, bytes) else v) for v in store.read(IMAGE_IDS)]
    return [f"image-{n}" for n in range(store.n_images or 0)]


@torch.no_grad()
def top_images(store: ActivationStore, coder: Coder, membership: torch.Tensor | None, T: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scores (U, T), image numbers (U, T))`` of every unit's best ``T`` images, best first;
    ``membership`` None: every atom is a unit. Units with fewer images keep ``-1`` numbers."""
    best_scores: torch.Tensor | None = None
    best_ids: torch.Tensor | None = None
    for ids, pooled in pooled_codes(store, coder):
        scores = pooled if membership is None else pooled @ membership.to(pooled)
        ids_t = torch.as_tensor(ids, device=scores.device).expand(scores.shape[1], -1)
        scores = scores.t()
        if best_scores is not None:
            scores, ids_t = torch.cat([best_scores, scores], 1), torch.cat([best_ids, ids_t], 1)
        k = min(T, scores.shape[1])
        best_scores, order = scores.topk(k, dim=1)
        best_ids = ids_t.gather(1, order)
    if best_scores is None:
        raise ValueError(f"{store.path} holds no rows")
    if best_scores.shape[1] < T:
        pad = T - best_scores.shape[1]
        best_scores = torch.cat([best_scores, best_scores.new_full((best_scores.shape[0], pad), float("nan"))], 1)
        best_ids = torch.cat([best_ids, best_ids.new_full((best_ids.shape[0], pad), -1)], 1)
    return best_scores.cpu(), best_ids.cpu()


@torch.no_grad()
def pooled_on(store: ActivationStore, coder: Coder, images: set[int]) -> dict[int, torch.Tensor]:
    """The pooled code (n,) of each image number in ``images``."""
    found: dict[int, torch.Tensor] = {}
    for ids, pooled in pooled_codes(store, coder):
        for row in np.flatnonzero(np.isin(ids, list(images))):
            found[int(ids[row])] = pooled[row].cpu()
    return found


@torch.no_grad()
def fired_atoms(store: ActivationStore, coder: Coder) -> torch.Tensor:
    """(n,) bool: atoms with a non-zero pooled activation on some image (the live atoms)."""
    fired = torch.zeros(coder.sae.n_latents, dtype=torch.bool)
    for _, pooled in pooled_codes(store, coder):
        fired |= (pooled > 0).any(0).cpu()
    return fired
