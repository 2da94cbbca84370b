"""Final figures of a trained cascade, per level: reconstruction (FVU, L0), health (dead share,
near-duplicate atoms, orphans), HMS (spec §7) and, on planted data, hierarchy recovery.

Level 1 is measured on store rows; level l ≥ 2 on all atoms of level l−1 (its data). A
baseline of ``hsae.methods`` (spec §6) is scored by the same code: only its parents and the
figures of its levels ≥ 2 come from the baseline itself.
Everything streams over the store in chunks.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch import nn

from hsae.cascade.hierarchy import evaluating, hierarchy_dict
from hsae.errors import BadInput
from hsae.metrics.health import near_duplicate_pairs
from hsae.metrics.hms import hms_by_level, semantic_vectors
from hsae.metrics.inference_rule import alive_by_pre_activation, batch_inference
from hsae.metrics.pooling import pool_images
from hsae.metrics.recovery import hierarchy_recovery
from hsae.recipe.schema import EvalConfig
from hsae.sae.sae import SAE
from hsae.store import ActivationStore
from hsae.store.truth import MARKED_DATASET, MARKER, MARKER_NAME, has_marked_truth, load_truth

CHUNK_ROWS = 4096


def _row_chunks(store: ActivationStore, max_rows: int | None) -> Iterator[tuple[int, np.ndarray]]:
    limit = store.n_rows if max_rows is None else min(max_rows, store.n_rows)
    for start, block in store.iter_chunks(CHUNK_ROWS):
        if start >= limit:
            return
        yield start, block[: limit - start]


@torch.no_grad()
def _level1_codes(cascade: nn.Module, store: ActivationStore, scale: float, max_rows: int | None
                  ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(x, x_hat, z) per chunk of store rows, x already scaled."""
    sae = cascade.level(1)
    device = sae.W_dec.device
    for _, block in _row_chunks(store, max_rows):
        x = torch.as_tensor(block, dtype=torch.float32, device=device) * scale
        out = sae(x)
        yield x, out.x_hat, out.z


@torch.no_grad()
def level1_figures(cascade: nn.Module, store: ActivationStore, scale: float, max_rows: int | None) -> dict:
    """FVU = Σ||x − x_hat||² / Σ||x − mean x||², mean L0 and the share of latents that never fired."""
    n, sq_err, sum_x, sum_sq, l0 = 0, 0.0, None, 0.0, 0.0
    fired = torch.zeros(cascade.level(1).n_latents, dtype=torch.bool)
    for x, x_hat, z in _level1_codes(cascade, store, scale, max_rows):
        n += x.shape[0]
        sq_err += float((x - x_hat).double().pow(2).sum())
        sum_x = x.double().sum(0) if sum_x is None else sum_x + x.double().sum(0)
        sum_sq += float(x.double().pow(2).sum())
        l0 += float((z > 0).sum())
        fired |= (z > 0).any(0).cpu()
    variance = sum_sq - float(sum_x.pow(2).sum()) / n
    return {"rows": n, "fvu": sq_err / variance, "l0": l0 / n, "dead": float((~fired).float().mean())}


def image_chunks(cascade: nn.Module, store: ActivationStore, scale: float, embeddings: np.ndarray,
                 config: EvalConfig):
    """A re-iterable source of (pooled level-1 activations per image, that image's embedding)."""
    index = store.image_index()

    def coded():
        start = 0
        for x, _, z in _level1_codes(cascade, store, scale, config.max_rows):
            rows = np.arange(start, start + x.shape[0])
            start += x.shape[0]
            yield z, rows if index is None else index[rows]

    def chunks():
        for ids, pooled in pool_images(coded(), config.pooling):
            yield pooled, torch.as_tensor(embeddings[ids.numpy()], dtype=torch.float32)

    return chunks


def _scaled_rows(store: ActivationStore, scale: float, max_rows: int | None, device: torch.device):
    """A re-iterable source of the evaluation rows, scaled as in training."""
    def rows():
        for _, block in _row_chunks(store, max_rows):
            yield torch.as_tensor(block, dtype=torch.float32, device=device) * scale

    return rows


@torch.no_grad()
def _structure(model: nn.Module, store: ActivationStore, scale: float, config: EvalConfig):
    """(parents [π_2, …], figures of levels ≥ 2, widths, each level's units as columns), as the
    method's model gives them (``hsae.interfaces.method``): a cascade reads them from its own
    levels (spec §4), a baseline from the evaluation rows where it needs them (spec §6)."""
    rows = _scaled_rows(store, scale, config.max_rows, model.level(1).W_dec.device)
    return (model.parents(rows, config.inference), model.level_figures(rows), model.widths,
            [model.decoder(l) for l in range(1, model.depth + 1)])


def level1_vectors(model: nn.Module, store: ActivationStore, scale: float, embeddings: np.ndarray,
                   config: EvalConfig) -> torch.Tensor:
    """Semantic vectors of the level-1 units under the recipe's inference rule (spec §7)."""
    authors = config.inference == "authors"
    alive = None
    if authors and isinstance(model.level(1), SAE):
        alive = alive_by_pre_activation(
            model.level(1), _scaled_rows(store, scale, config.max_rows, model.level(1).W_dec.device))
    with batch_inference(model, authors):
        return semantic_vectors(image_chunks(model, store, scale, embeddings, config),
                                weighting=config.weighting, top_m=config.top_m, alive=alive)


def evaluate(cascade: nn.Module, store: ActivationStore, scale: float, config: EvalConfig,
             embeddings: np.ndarray | None) -> tuple[dict, dict]:
    """(metrics.json content, hierarchy.json content) for a trained cascade or baseline."""
    with evaluating(cascade):
        parents, upper, widths, decoders = _structure(cascade, store, scale, config)
        levels = {"1": level1_figures(cascade, store, scale, config.max_rows), **upper}
        for l in range(1, len(widths) + 1):
            levels[str(l)]["near_duplicate_pairs"] = near_duplicate_pairs(decoders[l - 1], config.duplicate_threshold)
            levels[str(l)]["n_latents"] = widths[l - 1]
        for l, pi in enumerate(parents, start=2):
            levels[str(l)]["orphans"] = int((pi < 0).sum())
            levels[str(l)]["concepts"] = int(len(np.unique(pi[pi >= 0])))  # latents with a child
        if embeddings is not None and parents:
            vectors = level1_vectors(cascade, store, scale, embeddings, config)
            for report in hms_by_level(vectors, parents, top_level_size=widths[-1], null_draws=config.null_draws):
                levels[str(report.level)]["hms"] = report.to_dict(per_parent=True)
        metrics = {"levels": levels}
        if store.has("truth") and parents:
            recovery, note = _recovery(cascade, parents, store, config)
            metrics.update({"recovery": recovery} if recovery is not None else {"notes": [note]})
    return metrics, hierarchy_dict(parents, widths)


def _recovery(cascade: nn.Module, parents: list, store: ActivationStore,
              config: EvalConfig) -> tuple[dict | None, str | None]:
    """(recovery figures, None), or (None, a one-line note why there are none): recovery is an
    extra of planted data, scored only against a ``truth/`` group in this project's format."""
    if not has_marked_truth(store):
        return None, (f"no hierarchy recovery: the truth/ group of {store.path} is not a planted hierarchy "
                      f"of hsae's format (attribute {MARKER_NAME}={MARKER!r} on {MARKED_DATASET})")
    try:
        truth = load_truth(store)
    except BadInput as exc:
        return None, f"no hierarchy recovery: {exc}"
    return hierarchy_recovery(cascade.level(1).W_dec.t(), parents, truth, config.match_threshold).to_dict(), None
