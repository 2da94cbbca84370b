"""A local vision-language model loaded to answer questions (judges, labellers), by the
extractor of its family, so that it loads exactly as for extraction (Qwen3-VL without
torchvision included).
"""

from __future__ import annotations

import json
from pathlib import Path

from hsae.errors import BadInput
from hsae_plugins.extractors.gemma3 import Gemma3Extractor
from hsae.interfaces.extraction.transformers import TransformersExtractor
from hsae_plugins.extractors.hf_module import HFModuleExtractor
from hsae_plugins.extractors.llava import LlavaExtractor
from hsae_plugins.extractors.qwen3_vl import Qwen3VLExtractor

_FAMILIES: dict[str, type[TransformersExtractor]] = {
    "qwen3_vl": Qwen3VLExtractor, "qwen3_vl_moe": Qwen3VLExtractor, "gemma3": Gemma3Extractor, "llava": LlavaExtractor,
}


def load_local_vlm(model: Path, device: str, dtype: str, where: str) -> TransformersExtractor:
    """The loaded extractor of the model in the local directory ``model`` (its first language
    layer hooked, which answering does not touch); BadInput if the directory is not a model."""
    config = Path(model) / "config.json"
    if not config.is_file():
        raise BadInput(f"{where}: {model} is not a local model directory (no config.json); "
                       "give the folder of a transformers vision-language model")
    model_type = json.loads(config.read_text()).get("model_type")
    cls = _FAMILIES.get(model_type, HFModuleExtractor)
    extractor = cls(cls.Config(model=str(model), layer="language.0", device=device, dtype=dtype))
    extractor.load()
    return extractor
