"""HMS of a two-level BatchTopK cascade under ``eval.inference: authors`` equals the rules of the
authors' HMS script (spec §7), recomputed here step by step on the same fixture; the default
``threshold`` rule differs from it on that fixture."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hsae.cascade.cascade import Cascade
from hsae.cascade.config import CascadeConfig
from hsae.run.evaluation import evaluate
from hsae.recipe.schema import EvalConfig
from hsae.store import ActivationStore, StoreWriter

N_IMAGES, TOKENS, WIDTH, N1, N2, DIM = 30, 6, 10, 40, 6, 5
DEAD = [0, 1, 2, 3]  # level-1 units whose b_enc keeps them below the floor on every row


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    """A store of 30 images × 6 tokens, image embeddings, and a BatchTopK cascade (k₁ = 2, k₂ = 1)
    with random weights, an inference threshold set by hand and four units that never fire."""
    g = torch.Generator().manual_seed(0)
    rows = torch.randn(N_IMAGES * TOKENS, WIDTH, generator=g) + 0.5 * torch.randn(WIDTH, generator=g)
    path = tmp_path_factory.mktemp("rules") / "store.h5"
    with StoreWriter(path, width=WIDTH, with_image_index=True) as writer:
        writer.append(rows.numpy(), np.repeat(np.arange(N_IMAGES), TOKENS))
    embeddings = torch.randn(N_IMAGES, DIM, generator=g).numpy()
    config = CascadeConfig.model_validate({"levels": [
        {"n_latents": N1, "encoder": {"name": "batchtopk", "k": 2}},
        {"n_latents": N2, "encoder": {"name": "batchtopk", "k": 1}}]})
    cascade = Cascade(WIDTH, config)
    cascade.reset_parameters(torch.Generator().manual_seed(1))
    with torch.no_grad():
        for l, n in ((1, N1), (2, N2)):
            sae = cascade.level(l)
            sae.b_enc.copy_(0.3 * torch.randn(n, generator=g))
            sae.b_dec.copy_(0.1 * torch.randn(WIDTH, generator=g))
            sae.encoder.threshold.fill_(1.0)
        cascade.level(1).b_enc[DEAD] = -100.0
    return ActivationStore(path), embeddings, cascade.eval()


@torch.no_grad()
def _authors_hms(store: ActivationStore, embeddings: np.ndarray, cascade: Cascade) -> dict[int, float]:
    """The authors' procedure, written out: alive level-1 units (among a token's 12 largest ReLU
    pre-activations above 1e-3), level-1 codes with the batch budget over the chunk of tokens
    (the whole store is one chunk here), mean over each image's tokens, weights (a − min)/range
    (ones for a constant unit), unit prototypes, parents by the plain ReLU of level 2's
    pre-activations on the alive atoms above 1e-3, mean pairwise cosine per parent."""
    sae1, sae2 = cascade.level(1), cascade.level(2)
    x = torch.as_tensor(store.rows(0, store.n_rows), dtype=torch.float64)
    pre1 = torch.relu((x - sae1.b_dec.double()) @ sae1.W_enc.double().t() + sae1.b_enc.double())
    values, units = pre1.topk(12, dim=1)
    alive = sorted(set(units[values > 1e-3].tolist()))
    budget = int(np.ceil(sae1.encoder.config.k * x.shape[0]))
    kept = pre1.flatten().topk(budget)
    codes = torch.zeros_like(pre1).flatten().scatter(0, kept.indices, kept.values).view_as(pre1)
    per_image = codes.view(N_IMAGES, TOKENS, N1).mean(dim=1)[:, alive]
    emb = torch.as_tensor(embeddings, dtype=torch.float64)
    prototypes = []
    for column in per_image.T:
        spread = column.max() - column.min()
        weights = (column - column.min()) / spread if spread > 1e-8 else torch.ones_like(column)
        prototypes.append((weights[:, None] * emb).sum(0) / (weights.sum() + 1e-8))
    prototypes = torch.nn.functional.normalize(torch.stack(prototypes), dim=1)
    atoms = sae1.W_dec.double().t()[alive]
    post2 = torch.relu((atoms - sae2.b_dec.double()) @ sae2.W_enc.double().t() + sae2.b_enc.double())
    strength, parent = post2.max(dim=1)
    clusters: dict[int, list[int]] = {}
    for child, (s, k) in enumerate(zip(strength.tolist(), parent.tolist())):
        if s > 1e-3:
            clusters.setdefault(k, []).append(child)
    scores = {}
    for k, children in clusters.items():
        if len(children) >= 2:
            sims = prototypes[children] @ prototypes[children].T
            i, j = torch.triu_indices(len(children), len(children), offset=1)
            scores[k] = float(sims[i, j].mean())
    return scores


def _hsae_hms(store, embeddings, cascade, inference: str) -> dict[int, float]:
    metrics, _ = evaluate(cascade, store, 1.0, EvalConfig(inference=inference, null_draws=1), embeddings)
    per_parent = metrics["levels"]["2"]["hms"]["per_parent"]
    return {k: v for k, v in enumerate(per_parent) if v is not None}


def test_authors_rule_equals_the_authors_procedure(fixture):
    store, embeddings, cascade = fixture
    expected = _authors_hms(store, embeddings, cascade)
    got = _hsae_hms(store, embeddings, cascade, "authors")
    assert len(expected) >= 2
    assert got.keys() == expected.keys()
    for k in expected:
        assert got[k] == pytest.approx(expected[k], abs=1e-5)


def test_the_threshold_rule_is_another_rule_on_this_fixture(fixture):
    store, embeddings, cascade = fixture
    expected = _authors_hms(store, embeddings, cascade)
    got = _hsae_hms(store, embeddings, cascade, "threshold")
    assert got.keys() != expected.keys() or any(abs(got[k] - expected[k]) > 1e-3 for k in expected)


def test_never_firing_units_have_no_representation_under_either_rule(fixture):
    from hsae.run.evaluation import level1_vectors

    store, embeddings, cascade = fixture
    for inference in ("threshold", "authors"):
        vectors = level1_vectors(cascade, store, 1.0, embeddings, EvalConfig(inference=inference))
        assert torch.isnan(vectors[DEAD]).all()
        assert not torch.isnan(vectors[len(DEAD):]).all(dim=1).all()
