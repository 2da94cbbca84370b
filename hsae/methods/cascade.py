"""The cascade (spec §2-3) as a hierarchy method: the default ``model.method``.

Its hierarchy is read from the model itself (spec §4): level l ≥ 2 codes the atoms of level
l−1 (:meth:`hsae.cascade.cascade.Cascade.parents`), and the figures of level l ≥ 2 are measured
on those atoms, its data.
"""

from __future__ import annotations

from hsae.cascade.cascade import Cascade
from hsae.interfaces.method import Method


class CascadeMethod(Method):
    """Cascaded SAE (CSAE): level l trains jointly on the active decoder atoms of level l−1."""

    def build(self, n_inputs: int, model, steps: int, parts) -> Cascade:
        return Cascade(n_inputs, model.cascade_config())
