"""Layer names: the paper's short paths resolve on each family's real module tree."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from transformers.modeling_outputs import BaseModelOutput

from hsae.errors import BadInput, HsaeError
from hsae.interfaces.extraction.hooks import capture_output, output_tensor
from hsae.interfaces.extraction.layers import parse_short_form, resolve_layer
from hsae_plugins.extractors.gemma3 import Gemma3Extractor
from hsae_plugins.extractors.llava import LlavaExtractor
from hsae_plugins.extractors.qwen3_vl import Qwen3VLExtractor
from hsae_plugins.extractors.tiny_models import build_in_memory

# The paper's layers (Appendix E.1), on models as deep as the real ones (Qwen3-VL-4B: 24
# vision blocks; gemma-3-4b: 27 SigLIP layers; LLaVA-1.5-13B: 40 language layers).
PAPER = [
    (Qwen3VLExtractor, "qwen3_vl", dict(vision_layers=24), ["visual.blocks.23", "model.visual.blocks.23", "vision.23"],
     "model.visual.blocks.23"),
    (Gemma3Extractor, "gemma3", dict(vision_layers=27),
     ["vision_tower.encoder.layers.26", "vision_tower.vision_model.encoder.layers.26", "vision.26"],
     "model.vision_tower.encoder.layers.26"),
    (LlavaExtractor, "llava", dict(text_layers=40),
     ["language_model.layers.39", "language_model.model.layers.39", "model.language_model.layers.39", "language.39"],
     "model.language_model.layers.39"),
]


@pytest.mark.parametrize("cls,family,depths,names,full", PAPER, ids=[p[1] for p in PAPER])
def test_paper_layer_names_resolve(cls, family, depths, names, full):
    model, _ = build_in_memory(family, **depths)
    for name in names:
        cls.Config(model="any", layer=name)  # what `hsae validate` checks
        resolved = resolve_layer(model, name, cls.layer_templates)
        assert resolved.path == full
        assert resolved.module is model.get_submodule(full)


def test_an_index_past_the_last_layer_names_the_layer_count():
    model, _ = build_in_memory("qwen3_vl")
    with pytest.raises(BadInput, match=r"has 2 vision layers \(indices 0..1\)"):
        resolve_layer(model, "visual.blocks.23", Qwen3VLExtractor.layer_templates)


def test_unknown_paths_and_malformed_names_are_refused():
    model, _ = build_in_memory("llava")
    with pytest.raises(BadInput, match="not a module"):
        resolve_layer(model, "model.nothing.here", LlavaExtractor.layer_templates)
    with pytest.raises(ValidationError, match="dotted module path"):
        LlavaExtractor.Config(model="any", layer="language layer 39")


def test_short_forms_parse_to_kind_and_index():
    assert parse_short_form("visual.blocks.23") == ("vision", 23)
    assert parse_short_form("model.vision_tower.vision_model.encoder.layers.3") == ("vision", 3)
    assert parse_short_form("language_model.model.layers.39") == ("language", 39)
    assert parse_short_form("lm_head") is None


def test_output_tensor_reads_tensors_tuples_and_model_outputs():
    h = torch.randn(2, 3)
    assert output_tensor(h) is h
    assert output_tensor((h, None)) is h
    assert output_tensor(BaseModelOutput(last_hidden_state=h)) is h
    with pytest.raises(HsaeError):
        output_tensor((None,))


def test_capture_stops_the_pass_and_keeps_the_first_call():
    first, second = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    ran = []
    second.register_forward_hook(lambda *a: ran.append(1))
    x = torch.ones(1, 2)
    out = capture_output(first, lambda: second(first(x)))
    torch.testing.assert_close(out, first(x).detach())
    assert ran == []
    capture_output(first, lambda: second(first(x)), stop=False)
    assert ran == [1]
    with pytest.raises(HsaeError, match="did not run"):
        capture_output(first, lambda: second(x))


@pytest.mark.parametrize("extractor,layer", [("qwen3_vl", "visual.blocks.23"), ("gemma3", "vision_tower.encoder.layers.26"),
                                             ("llava", "language_model.layers.39")])
def test_the_extract_section_accepts_the_paper_layers(registered, extractor, layer):
    from hsae.extract import check_extract_config

    section = {"extractor": {"name": extractor, "model": "not/needed-to-validate", "layer": layer},
               "dataset": {"name": "image_folder", "root": "/not/needed/either"}}
    assert check_extract_config(section).extractor["layer"] == layer
