"""``class_names``: a unit is named by the most frequent dataset label among its top images.

The dataset labels are the class folders of an image folder, COCO's category names, or any
dataset's ``label`` (stored with the activations at extraction). This is how the paper's
authors name units. The keywords are every label seen at least ``min_count`` times, most
frequent first.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

from pydantic import Field

from hsae.interfaces.labeller import Label, Labeller, UnitEvidence
from hsae.interfaces.plugin import PluginConfig


class ClassNamesConfig(PluginConfig):
    min_count: int = Field(2, ge=1, description="a label seen this often among the top images is a keyword")


class ClassNames(Labeller):
    """The most frequent class folder / dataset label among the unit's top images (the authors' naming)."""

    Config = ClassNamesConfig

    def label(self, units: Sequence[UnitEvidence]) -> list[Label]:
        return [self._unit(unit) for unit in units]

    def _unit(self, unit: UnitEvidence) -> Label:
        counts = Counter(label for label in unit.image_labels if label)
        if not counts:
            return Label.failed("the unit's top images have no dataset labels (class folders or a dataset's labels)")
        ranked = counts.most_common()
        keywords = [label for label, n in ranked if n >= self.config.min_count] or [ranked[0][0]]
        return Label(ranked[0][0], keywords, json.dumps(dict(ranked)))
