"""``openai_compatible``: a chat-completions endpoint names a unit from its top images.

One request per unit: the unit's top images (at most ``max_images``; none with
``send_images: false``) and their dataset labels, asking for a short name and a few words
that express it, as JSON ``{"label": "...", "keywords": ["...", ...]}``. A unit whose request
fails or whose reply cannot be read gets an error label; the next unit is asked regardless.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from hsae.interfaces.labeller import Label, Labeller, UnitEvidence
from hsae_plugins.chat_completions import ChatClient, ChatEndpointConfig, ChatError, image_part, json_object

PROMPT = ("These images are the ones that most activate one concept of a vision-language model{labels}. "
          "What visual concept do they share? Answer with one JSON object "
          '{{"label": "a name of one to three words", "keywords": ["up to five single words that express it"]}} '
          "and nothing else.")


class OpenAICompatibleLabellerConfig(ChatEndpointConfig):
    max_images: int = Field(10, ge=1, description="top images shown per unit")


def label_from(answer: str) -> Label:
    """The label in a model's JSON answer, or an error label that keeps the raw answer."""
    try:
        parsed = json_object(answer)
        label = parsed.get("label")
        if not isinstance(label, str) or not label.strip():
            raise ValueError("no 'label' text")
        keywords = parsed.get("keywords", [])
        if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
            raise ValueError("'keywords' is not a list of words")
        return Label(label.strip(), [k.strip() for k in keywords if k.strip()] or [label.strip()], answer)
    except ValueError as exc:
        return Label.failed(f"malformed answer: {exc}", answer)


class OpenAICompatibleLabeller(Labeller):
    """Any chat-completions endpoint names each unit from its top images (and their dataset labels)."""

    Config = OpenAICompatibleLabellerConfig
    needs_images = True

    def __init__(self, config=None) -> None:
        super().__init__(config)
        self.needs_images = self.config.send_images
        self.client = ChatClient(self.config, "openai_compatible labeller")

    def label(self, units: Sequence[UnitEvidence]) -> list[Label]:
        return [self._unit(unit) for unit in units]

    def _unit(self, unit: UnitEvidence) -> Label:
        known = [l for l in unit.image_labels[: self.config.max_images] if l]
        hint = f" (their dataset labels: {', '.join(known)})" if known else ""
        content = [{"type": "text", "text": PROMPT.format(labels=hint)}]
        if self.config.send_images:
            content = [image_part(image) for image in unit.images[: self.config.max_images]] + content
        try:
            answer = self.client.complete([{"role": "user", "content": content}])
        except ChatError as exc:
            return Label.failed(str(exc))
        return label_from(answer)
