"""``vlm``: a local vision-language model captions a unit's top images; the label is the word
the captions share most.

Each of the top images (at most ``max_images``) is captioned greedily with ``prompt``. The
captions' words are lower-cased, stop words and words of fewer than three letters dropped;
the label is the most frequent word (ties: the earliest), the keywords the ``keywords`` most
frequent ones. Units whose captions hold no content word get an error label with the captions kept.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field

from hsae.interfaces.labeller import Label, Labeller, UnitEvidence
from hsae.interfaces.plugin import PluginConfig
from hsae_plugins.extractors.local_vlm import load_local_vlm

STOP_WORDS = frozenset("""
a an the and or of in on at to with without for from by as is are was were be been being this that these
those it its there their they them image picture photo photograph shows showing shown show depicts depicting
features featuring which who what where some one two three several many few very into onto over under near
next background foreground front top bottom left right side has have having can also while other another
""".split())


class VLMLabellerConfig(PluginConfig):
    model: Path = Field(description="folder of a local vision-language model")
    device: str = Field("auto", description="'auto' or a torch device")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    prompt: str = Field("Describe what is in this image in one short sentence.", description="the caption prompt")
    max_new_tokens: int = Field(30, ge=1)
    max_images: int = Field(10, ge=1, description="top images captioned per unit")
    keywords: int = Field(3, ge=1, description="how many frequent words become keywords")


def content_words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z]+", text.lower()) if len(w) >= 3 and w not in STOP_WORDS]


class VLMLabeller(Labeller):
    """A local vision-language model captions the unit's top images; the most shared word is the label."""

    Config = VLMLabellerConfig
    needs_images = True

    def __init__(self, config=None) -> None:
        super().__init__(config)
        self.model = load_local_vlm(self.config.model, self.config.device, self.config.dtype, "vlm labeller")

    def label(self, units: Sequence[UnitEvidence]) -> list[Label]:
        return [self._unit(unit) for unit in units]

    def _unit(self, unit: UnitEvidence) -> Label:
        images = unit.images[: self.config.max_images]
        captions = self.model.generate(images, self.config.prompt, self.config.max_new_tokens)
        raw = "\n".join(captions)
        # a word counts once per caption, so one wordy caption cannot outvote the others
        counts = Counter(w for caption in captions for w in dict.fromkeys(content_words(caption)))
        if not counts:
            return Label.failed("the captions of the top images hold no content word", raw)
        words = [w for w, _ in counts.most_common(self.config.keywords)]
        return Label(words[0], words, raw)
