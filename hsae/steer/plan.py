"""What each steering arm clamps (spec §8).

For a cluster C (a level-l latent, l ≥ 2, with the level-1 atoms beneath it): its top-T
training images are those with the largest ``Σ_{j∈C} a_j(n)`` (image-pooled codes of the
steering code); ``μ_C`` is the mean of ``a_j(n)`` over ``j ∈ C`` and those images, and the
insertion clamp is ``c = α μ_C`` (suppression: ``c = 0``). Arms:

    cluster      every atom of C
    best_child   the atom of C with the largest mean activation on the top-T images
    rand1        one live atom of C, drawn with the seed
    matched      (with a matched run) the |C| atoms of the matched run's SAE with the lowest mean
                 activation rank on the same top-T images, with its own μ on them
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import rankdata

from hsae.concepts.top_images import Coder, fired_atoms, pooled_on, top_images
from hsae.concepts.units import Hierarchy, unit_id
from hsae.errors import BadInput
from hsae.intervene.model_sae import ModelSAE
from hsae.steer.config import MATCHED, SteerConfig
from hsae.store import ActivationStore


@dataclass(frozen=True)
class Arm:
    """One arm of one cluster: the SAE written back (``which``: 'run' or 'matched'), the latents
    of that SAE to clamp, and the insertion clamp value."""

    name: str
    which: str
    latents: list[int]
    clamp: float


@dataclass(frozen=True)
class ClusterPlan:
    unit: str
    level: int
    index: int
    atoms: list[int]
    top_images: list[int]
    mu: float
    arms: list[Arm]


def choose_clusters(hierarchy: Hierarchy, config: SteerConfig) -> list[int]:
    """The clusters' latent indices: the named ones (checked), or a seeded draw of eligible ones."""
    eligible = hierarchy.clusters(config.level)
    if isinstance(config.clusters, list):
        bad = [k for k in config.clusters if k not in eligible]
        if bad:
            raise BadInput(f"steer.clusters: latents {bad} of level {config.level} do not have two or more children; "
                           f"eligible: {eligible[:20]}{' …' if len(eligible) > 20 else ''}")
        return list(config.clusters)
    if len(eligible) < config.clusters:
        raise BadInput(f"steer.clusters: {config.clusters} clusters asked for, but level {config.level} has only "
                       f"{len(eligible)} latents with two or more children")
    rng = np.random.default_rng(config.seed)
    return sorted(int(k) for k in rng.choice(eligible, size=config.clusters, replace=False))


def _matched_arm(pooled: dict[int, torch.Tensor], images: list[int], size: int, alpha: float) -> Arm:
    """The ``size`` latents with the lowest mean activation rank on ``images`` (their pooled codes;
    rank 1 = the most active on an image, tied latents share their mean rank)."""
    codes = torch.stack([pooled[n] for n in images])  # (T, n)
    ranks = rankdata(-codes.double().numpy(), method="average", axis=1).mean(0)  # tied atoms share a rank
    chosen = np.argsort(ranks, kind="stable")[:size].tolist()
    return Arm(MATCHED, "matched", sorted(chosen), alpha * float(codes[:, chosen].mean()))


def plan_clusters(store: ActivationStore, hierarchy: Hierarchy, run_sae: ModelSAE, scale: float,
                  config: SteerConfig, matched: tuple[ModelSAE, float] | None = None) -> list[ClusterPlan]:
    """Every cluster's atoms, top images, μ_C and arms."""
    coder = Coder(run_sae.sae, scale, config.code)
    indices = choose_clusters(hierarchy, config)
    units = [(config.level, k) for k in indices]
    membership = hierarchy.membership(units, run_sae.sae.n_latents, run_sae.offset)
    _, best = top_images(store, coder, membership, config.top_images)
    wanted = {int(n) for n in best.flatten().tolist() if n >= 0}
    pooled = pooled_on(store, coder, wanted)
    live = fired_atoms(store, coder)
    if matched is not None:
        matched_sae, matched_scale = matched
        matched_pooled = pooled_on(store, Coder(matched_sae.sae, matched_scale, config.code), wanted)
    rng = np.random.default_rng(config.seed)
    plans = []
    for u, (level, index) in enumerate(units):
        atoms = hierarchy.atoms(level, index)
        latents = [run_sae.offset + a for a in atoms]
        images = [int(n) for n in best[u].tolist() if n >= 0]
        on_top = torch.stack([pooled[n][latents] for n in images])  # (T, |C|)
        mu = float(on_top.mean())
        clamp = config.alpha * mu
        alive = [lat for lat in latents if live[lat]] or latents
        arms = {
            "rand1": Arm("rand1", "run", [int(rng.choice(alive))], clamp),
            "best_child": Arm("best_child", "run", [latents[int(on_top.mean(0).argmax())]], clamp),
            "cluster": Arm("cluster", "run", latents, clamp),
        }
        chosen = [arms[name] for name in config.arms if name != "baseline"]
        if matched is not None:
            chosen.append(_matched_arm(matched_pooled, images, len(latents), config.alpha))
        plans.append(ClusterPlan(unit_id(level, index), level, index, atoms, images, mu, chosen))
    return plans
