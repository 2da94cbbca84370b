"""Hierarchical agglomerative clustering of the level-1 atoms (Table 4 "HAC"), with
scikit-learn's ``AgglomerativeClustering`` on cosine distances 1 − cos(a_i, a_j)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field
from sklearn.cluster import AgglomerativeClustering

from hsae.methods.base import BaselineMethod, MethodOptions
from hsae.methods.clustering import PostHocClustering


class HACOptions(MethodOptions):
    linkage: Literal["average", "complete", "single"] = Field(
        "average", description="distance between clusters: mean, largest or smallest cosine distance of their atoms")


class HAC(PostHocClustering):
    """Level-1 SAE; level l ≥ 2 = agglomerative clusters of the level below (cosine distance)."""

    Options = HACOptions

    def cluster(self, units: np.ndarray, n_clusters: int) -> np.ndarray:
        model = AgglomerativeClustering(n_clusters=n_clusters, metric="cosine", linkage=self.options.linkage)
        return model.fit_predict(units).astype(np.int64)


class HACMethod(BaselineMethod):
    """HAC baseline: a level-1 SAE, its atoms grouped by agglomerative clustering (cosine distance)."""

    Model = HAC
