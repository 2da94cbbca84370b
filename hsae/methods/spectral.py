"""Spectral clustering of the level-1 atoms (Table 4 "SC"), with scikit-learn's
``SpectralClustering`` on the affinity max(cos(a_i, a_j), 0) (a graph needs non-negative
weights; opposite directions are unrelated, not similar)."""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
from pydantic import Field
from sklearn.cluster import SpectralClustering

from hsae.methods.base import BaselineMethod, MethodOptions
from hsae.methods.clustering import PostHocClustering


class SpectralOptions(MethodOptions):
    assign_labels: Literal["kmeans", "discretize", "cluster_qr"] = Field(
        "kmeans", description="how labels are read from the spectral embedding")
    seed: int = Field(0, description="random state of the eigensolver and of k-means")


class Spectral(PostHocClustering):
    """Level-1 SAE; level l ≥ 2 = spectral clusters of the level below (cosine affinity)."""

    Options = SpectralOptions

    def cluster(self, units: np.ndarray, n_clusters: int) -> np.ndarray:
        affinity = np.clip(units @ units.T, 0.0, None)
        model = SpectralClustering(n_clusters=n_clusters, affinity="precomputed",
                                   assign_labels=self.options.assign_labels, random_state=self.options.seed)
        with warnings.catch_warnings():  # a graph with isolated atoms is expected, not an error
            warnings.filterwarnings("ignore", message="Graph is not fully connected")
            return model.fit_predict(affinity).astype(np.int64)


class SpectralMethod(BaselineMethod):
    """Spectral baseline: a level-1 SAE, its atoms grouped by spectral clustering (cosine affinity)."""

    Model = Spectral
