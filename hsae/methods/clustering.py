"""Post-hoc clustering baselines (spec §6; the paper's Table 4 "HAC" and "SC" columns): level 1
is an SAE trained alone; level 2 groups its decoder columns a¹_j = W_dec[:, j] (Eq. 6) into
n₂ clusters by cosine affinity, and a cluster is its atoms' parent.

For L > 2, level l clusters the level-(l−1) groups, each represented by the unit mean of its
members' unit atoms, into n_l clusters. A group without members has no representative and no
parent. Nothing above level 1 is trained: ``levels[l]`` gives only the width n_l.
"""

from __future__ import annotations

import numpy as np
import torch

from hsae.cascade.cascade import CascadeOutput
from hsae.cascade.hierarchy import NO_PARENT
from hsae.methods.base import RowSource, SeparateSAEs


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def group_means(units: np.ndarray, labels: np.ndarray, n_groups: int) -> np.ndarray:
    """(n_groups, d): the unit mean of each group's members (zero for an empty group)."""
    sums = np.zeros((n_groups, units.shape[1]))
    members = labels != NO_PARENT
    np.add.at(sums, labels[members], units[members])
    return unit_rows(sums)


class PostHocClustering(SeparateSAEs):
    """Base of the clustering baselines: subclasses give :meth:`cluster`."""

    def __init__(self, n_inputs: int, model, options, steps: int):
        widths = [lv.n_latents for lv in model.levels]
        super().__init__(n_inputs, widths, [n_inputs], [model.levels[0]])
        self.options = options
        self._cache: tuple[tuple, list[np.ndarray], list[np.ndarray]] | None = None

    def cluster(self, units: np.ndarray, n_clusters: int) -> np.ndarray:
        """Labels in 0..n_clusters−1 for the unit rows ``units`` (at least n_clusters of them)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, step: int | None = None) -> CascadeOutput:
        return self.train_level(1, x, step)

    def groups(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """([π_2, …, π_L], [unit vectors of levels 1..L as rows]), computed once per dictionary."""
        W = self.sae(1).W_dec
        key = (W.data_ptr(), W._version)
        if self._cache is None or self._cache[0] != key:
            vectors = [unit_rows(W.detach().t().double().cpu().numpy())]
            parents = []
            for n_groups in self.widths[1:]:
                units = vectors[-1]
                labels = np.full(len(units), NO_PARENT, dtype=np.int64)
                usable = np.flatnonzero(np.linalg.norm(units, axis=1) > 0)
                if len(usable) <= n_groups:
                    labels[usable] = np.arange(len(usable))
                else:
                    labels[usable] = self.cluster(units[usable], n_groups)
                parents.append(labels)
                vectors.append(group_means(units, labels, n_groups))
            self._cache = (key, parents, vectors)
        return self._cache[1], self._cache[2]

    def parents(self, rows: RowSource | None = None, rule: str = "threshold") -> list[np.ndarray]:
        """The clusters, which need neither the evaluation rows nor the inference rule."""
        return [p.copy() for p in self.groups()[0]]

    def level_figures(self, rows: RowSource | None = None) -> dict[str, dict]:
        """Clusters reconstruct nothing: FVU and L0 are undefined; dead = share of empty groups."""
        parents, _ = self.groups()
        figures = {}
        for l, labels in enumerate(parents, start=2):
            used = np.unique(labels[labels != NO_PARENT])
            figures[str(l)] = {"rows": len(labels), "fvu": None, "l0": None,
                               "dead": 1.0 - len(used) / self.widths[l - 1]}
        return figures

    @torch.no_grad()
    def row_codes(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Level 1's codes of the rows; a cluster's code is the sum of its members' codes (it
        fires where one of them does)."""
        parents, _ = self.groups()
        codes = [self.sae(1).encode(x).z]
        for labels, width in zip(parents, self.widths[1:]):
            below, members = codes[-1], torch.as_tensor(labels, device=x.device)
            keep = members != NO_PARENT
            codes.append(below.new_zeros(below.shape[0], width).index_add_(1, members[keep], below[:, keep]))
        return codes

    def decoder(self, l: int) -> torch.Tensor:
        if l == 1:
            return self.sae(1).W_dec
        return torch.as_tensor(self.groups()[1][l - 1].T, dtype=torch.float32)
