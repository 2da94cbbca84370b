"""A planted concept hierarchy and activations drawn from it (model: ``docs/synthetic.md``).

Concepts form a tree of ``depth`` levels: level 1 holds the leaves, level ``depth`` the roots.
Every concept has a unit direction in R^d; a child's direction is ``s · parent + sqrt(1 − s²)
· r`` with ``r`` a random unit vector orthogonal to the parent, so it is a unit vector at
cosine ``s`` from its parent and two siblings have cosine ``s²`` in expectation. A sample
switches on a few leaves with positive magnitudes: ``x = Σ m_j · leaf_j + ε``. Its backbone
embedding is the magnitude-weighted mean, over its active leaves, of the sum of the
embedding vectors of the leaf and all its ancestors, plus noise.

Per-level lists are ordered from the bottom up: entry ``i`` describes the link between
level ``i + 1`` and its parents at level ``i + 2``.

Everything is drawn from ``numpy.random.default_rng`` seeded by ``[seed, stream, block]``:
the tree by stream 0, and the samples in blocks of :data:`BLOCK_ROWS` rows, each from its own
streams, so any block can be regenerated alone and the data depend on ``seed`` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from hsae.interfaces.plugin import PluginConfig
from hsae.store.truth import Truth

BLOCK_ROWS = 2048
_TREE, _EVENTS, _ACTIVATION_NOISE, _EMBEDDING_NOISE = range(4)


class HierarchyConfig(PluginConfig):
    """Knobs of the planted hierarchy (defaults: a quick CPU demo, 12 × 4 = 48 leaves in R^64)."""

    depth: int = Field(2, ge=2, description="levels of concepts, leaves = level 1")
    n_roots: int = Field(12, ge=1, description="concepts at the top level")
    branching: int | list[int] = Field(
        4, description="children per concept: one number, or one per level from level 2 up"
    )
    branching_max: int | list[int] | None = Field(
        None,
        description="with it, each concept draws its number of children uniformly from branching to "
        "branching_max (one number, or one per level as branching); without it, exactly branching",
    )
    similarity: float | list[float] = Field(
        0.7,
        description="cosine between a concept and its parent: one number, or one per level from level 1 up",
    )
    width: int = Field(64, ge=1, description="activation width d")
    n_samples: int = Field(20_000, ge=1)
    leaves_per_sample: float = Field(3.0, ge=1.0, description="mean number of active leaves")
    leaf_zipf: float = Field(
        0.0, ge=0.0, description="Zipf exponent a of the leaf frequencies: the leaf of rank r (a random order) "
        "is drawn with weight r^-a; 0: every leaf equally often"
    )
    count_distribution: Literal["poisson", "fixed"] = Field(
        "poisson", description="poisson: 1 + Poisson(mean − 1) leaves; fixed: exactly the mean"
    )
    sibling_cooccurrence: float = Field(
        0.3, ge=0.0, le=1.0, description="chance that each extra leaf is a sibling of an active one"
    )
    magnitude_distribution: Literal["uniform", "lognormal"] = "uniform"
    magnitude_range: tuple[float, float] = Field((0.5, 1.5), description="uniform magnitudes: [low, high]")
    magnitude_log_std: float = Field(0.5, gt=0.0, description="lognormal magnitudes: σ of log m (median 1)")
    noise_std: float = Field(0.02, ge=0.0, description="std of the Gaussian noise per activation coordinate")
    embedding_dim: int = Field(32, ge=1, description="backbone embedding width D")
    embedding_level_weights: list[float] | None = Field(
        None, description="weight of each level's concept embedding, from level 1 up; default all 1"
    )
    embedding_noise: float = Field(0.2, ge=0.0, description="expected norm of the embedding noise")
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> HierarchyConfig:
        links = self.depth - 1
        for name in ("branching", "branching_max", "similarity"):
            value = getattr(self, name)
            if isinstance(value, list) and len(value) != links:
                raise ValueError(f"{name} needs one entry per level link ({links}); got {len(value)}")
        if any(b < 1 for b in self.branching_per_level):
            raise ValueError(f"branching must be ≥ 1; got {self.branching}")
        if any(high < low for low, high in self.branching_ranges):
            raise ValueError(f"branching_max must be ≥ branching at every level; got {self.branching_max} "
                             f"for branching {self.branching}")
        if any(not 0.0 <= s < 1.0 for s in self.similarity_per_level):
            raise ValueError(f"similarity must be in [0, 1); got {self.similarity}")
        low, high = self.magnitude_range
        if not 0.0 < low <= high:
            raise ValueError(f"magnitude_range must satisfy 0 < low ≤ high; got {self.magnitude_range}")
        if self.count_distribution == "fixed" and self.leaves_per_sample != int(self.leaves_per_sample):
            raise ValueError(f"a fixed leaf count must be whole; got {self.leaves_per_sample}")
        if self.leaves_per_sample > self.n_leaves:
            raise ValueError(f"leaves_per_sample {self.leaves_per_sample} exceeds the {self.n_leaves} leaves")
        weights = self.embedding_level_weights
        if weights is not None and len(weights) != self.depth:
            raise ValueError(f"embedding_level_weights needs {self.depth} entries; got {len(weights)}")
        return self

    @property
    def branching_per_level(self) -> list[int]:
        b = self.branching
        return list(b) if isinstance(b, list) else [b] * (self.depth - 1)

    @property
    def branching_ranges(self) -> list[tuple[int, int]]:
        """(fewest, most) children of a concept, per level from level 2 up."""
        high = self.branching_max
        if high is None:
            return [(b, b) for b in self.branching_per_level]
        highs = list(high) if isinstance(high, list) else [high] * (self.depth - 1)
        return list(zip(self.branching_per_level, highs))

    @property
    def similarity_per_level(self) -> list[float]:
        s = self.similarity
        return list(s) if isinstance(s, list) else [s] * (self.depth - 1)

    @property
    def level_sizes(self) -> list[int]:
        """``n_l`` for l = 1..depth with ``branching`` children per concept: the tree's sizes, or the
        fewest the tree can have when ``branching_max`` draws the counts (the drawn sizes are
        those of ``build_tree(config).truth``)."""
        sizes = [self.n_roots]
        for b in reversed(self.branching_per_level):
            sizes.insert(0, sizes[0] * b)
        return sizes

    @property
    def n_leaves(self) -> int:
        return self.level_sizes[0]


@dataclass(frozen=True)
class PlantedTree:
    """The truth (directions, parents) and each concept's embedding vector, per level."""

    truth: Truth
    concept_embeddings: tuple[np.ndarray, ...]  # level l: (n_l, D)
    leaf_weights: np.ndarray  # (n_leaves,): how often each leaf is drawn, relative to the others

    @property
    def n_leaves(self) -> int:
        return len(self.truth.leaves)

    def leaf_profiles(self, level_weights: list[float]) -> np.ndarray:
        """``(n_leaves, D)``: Σ_l w_l · g_l[ancestor_l(leaf)], the embedding of a leaf alone."""
        return sum(
            w * emb[self.truth.ancestors(level)]
            for level, (w, emb) in enumerate(zip(level_weights, self.concept_embeddings), start=1)
        )


def _rng(config: HierarchyConfig, stream: int, block: int = 0) -> np.random.Generator:
    return np.random.default_rng([config.seed, stream, block])


def _unit_rows(m: np.ndarray) -> np.ndarray:
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def build_tree(config: HierarchyConfig) -> PlantedTree:
    """Draw the concept tree: directions, parents (children in a shuffled order; their number per
    concept drawn from ``branching_ranges``), embeddings and leaf weights (Zipf in a random order)."""
    rng = _rng(config, _TREE)
    directions = [_unit_rows(rng.standard_normal((config.n_roots, config.width)))]
    parents: list[np.ndarray] = []
    for (fewest, most), s in zip(reversed(config.branching_ranges), reversed(config.similarity_per_level)):
        above = directions[0]
        counts = fewest if fewest == most else rng.integers(fewest, most + 1, len(above))
        parent = rng.permutation(np.repeat(np.arange(len(above)), counts))
        p = above[parent]
        r = rng.standard_normal((len(parent), config.width))
        r = _unit_rows(r - (r * p).sum(1, keepdims=True) * p)
        directions.insert(0, s * p + np.sqrt(1.0 - s * s) * r)
        parents.insert(0, parent)
    embeddings = tuple(
        rng.standard_normal((len(v), config.embedding_dim)) / np.sqrt(config.embedding_dim) for v in directions
    )
    n_leaves = len(directions[0])
    weights = np.ones(n_leaves)
    if config.leaf_zipf > 0:
        weights = (1.0 + rng.permutation(n_leaves)) ** -config.leaf_zipf
    return PlantedTree(Truth(tuple(directions), tuple(parents)), embeddings, weights)


@dataclass(frozen=True)
class SampleBlock:
    """Rows ``[start, start + len)``: active leaves (−1 pads) and their magnitudes (0 pads)."""

    start: int
    leaves: np.ndarray  # (rows, k_max) int
    magnitudes: np.ndarray  # (rows, k_max) float

    def coefficients(self, n_leaves: int) -> np.ndarray:
        """Dense ``(rows, n_leaves)`` magnitude of every leaf in every row."""
        coef = np.zeros((len(self.leaves), n_leaves))
        rows = np.broadcast_to(np.arange(len(self.leaves))[:, None], self.leaves.shape)
        on = self.leaves >= 0
        coef[rows[on], self.leaves[on]] = self.magnitudes[on]
        return coef


def n_blocks(config: HierarchyConfig) -> int:
    return -(-config.n_samples // BLOCK_ROWS)


def _pick(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """One column per row, with probability proportional to the row's (nonnegative) weights."""
    cumulative = np.cumsum(weights, axis=1)
    target = rng.random(len(weights)) * cumulative[:, -1]
    return (cumulative > target[:, None]).argmax(axis=1)


def sample_block(config: HierarchyConfig, tree: PlantedTree, block: int) -> SampleBlock:
    """Which leaves are active, and how strongly, in block ``block``.

    The first leaf is drawn among all leaves; each further one is, with probability
    ``sibling_cooccurrence``, drawn among the inactive leaves that share a parent with an active
    leaf (when there are any), else among all inactive leaves; every draw in proportion to the
    leaves' weights (equal unless ``leaf_zipf``).
    """
    rng = _rng(config, _EVENTS, block)
    start = block * BLOCK_ROWS
    rows = min(BLOCK_ROWS, config.n_samples - start)
    n_leaves = tree.n_leaves
    mean = config.leaves_per_sample
    if config.count_distribution == "fixed":
        counts = np.full(rows, int(mean))
    else:
        counts = np.minimum(1 + rng.poisson(mean - 1.0, rows), n_leaves)
    k_max = int(counts.max())
    family = tree.truth.parents[0]
    active = np.zeros((rows, n_leaves), dtype=bool)
    family_active = np.zeros((rows, len(tree.truth.directions[1])), dtype=bool)
    leaves = np.full((rows, k_max), -1)
    for slot in range(k_max):
        inactive = ~active
        siblings = family_active[:, family] & inactive
        use_sibling = (rng.random(rows) < config.sibling_cooccurrence) & siblings.any(axis=1)
        choice = _pick(rng, np.where(use_sibling[:, None], siblings, inactive) * tree.leaf_weights)
        on = np.flatnonzero(slot < counts)
        leaves[on, slot] = choice[on]
        active[on, choice[on]] = True
        family_active[on, family[choice[on]]] = True
    if config.magnitude_distribution == "uniform":
        magnitudes = rng.uniform(*config.magnitude_range, size=leaves.shape)
    else:
        magnitudes = rng.lognormal(0.0, config.magnitude_log_std, size=leaves.shape)
    magnitudes[leaves < 0] = 0.0
    return SampleBlock(start, leaves, magnitudes)


def activations(config: HierarchyConfig, tree: PlantedTree, block: SampleBlock) -> np.ndarray:
    """``x = Σ_j m_j · leaf_j + ε``, ε ~ N(0, noise_std² I); ``(rows, d)`` float32."""
    coef = block.coefficients(tree.n_leaves)
    noise = _rng(config, _ACTIVATION_NOISE, block.start // BLOCK_ROWS).standard_normal(
        (len(coef), config.width)
    )
    return (coef @ tree.truth.leaves + config.noise_std * noise).astype(np.float32)


def embeddings(config: HierarchyConfig, tree: PlantedTree, block: SampleBlock) -> np.ndarray:
    """``e = Σ_j m_j · profile_j / Σ_j m_j + η``, η ~ N(0, (embedding_noise² / D) I);
    ``(rows, D)`` float32 (``profile_j``: :meth:`PlantedTree.leaf_profiles`)."""
    weights = config.embedding_level_weights or [1.0] * config.depth
    coef = block.coefficients(tree.n_leaves)
    mean = coef @ tree.leaf_profiles(weights) / coef.sum(axis=1, keepdims=True)
    noise = _rng(config, _EMBEDDING_NOISE, block.start // BLOCK_ROWS).standard_normal(mean.shape)
    return (mean + config.embedding_noise / np.sqrt(config.embedding_dim) * noise).astype(np.float32)
