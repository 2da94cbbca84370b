"""Extractor plugins on tiny offline models of each family, saved and loaded from a directory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from transformers import AutoModelForImageTextToText, AutoProcessor

from hsae.errors import BadInput
from hsae.extract import run_extraction
from hsae.interfaces.extractor import PAPER_PROMPT
from hsae.store import ActivationStore
from hsae_plugins.extractors.gemma3 import Gemma3Extractor
from hsae_plugins.extractors.hf_module import HFModuleExtractor
from hsae_plugins.extractors.llava import LlavaExtractor
from hsae_plugins.extractors.qwen3_vl import Qwen3VLExtractor
from hsae_plugins.extractors.qwen3_vl_processor import register

EXTRACTORS = {"qwen3_vl": Qwen3VLExtractor, "gemma3": Gemma3Extractor, "llava": LlavaExtractor}

# Hand counts for a 224×224 and a 160×96 (w×h) image, tiny configs of tiny_models.py:
# Qwen3-VL: 16-px patches of the image as given (both sides are multiples of 32), 4 per LLM token.
# Gemma-3: resized to 224, 14-px patches → 16×16 = 256, pooled to 16 soft tokens.
# LLaVA: resized to 224, 16-px patches → 196 (+1 CLS in the vision tower), 196 <image> tokens.
CASES = [
    ("qwen3_vl", "vision", "model.visual.blocks.1", [14 * 14, 6 * 10], 32),
    ("qwen3_vl", "language", "model.language_model.layers.1", [14 * 14 // 4, 6 * 10 // 4], 64),
    ("gemma3", "vision", "model.vision_tower.encoder.layers.1", [256, 256], 32),
    ("gemma3", "language", "model.language_model.layers.1", [16, 16], 64),
    ("llava", "vision", "model.vision_tower.encoder.layers.1", [197, 197], 32),
    ("llava", "language", "model.language_model.layers.1", [196, 196], 64),
]


def make(family, model_dir, layer, **options):
    cls = EXTRACTORS[family]
    extractor = cls(cls.Config(model=str(model_dir), layer=layer, device="cpu", **options))
    extractor.load()
    return extractor


def plain_hook_reference(model_dir, path, images, layout, image_token_id=None):
    """The module output from an ordinary forward hook and a full forward pass, split by hand."""
    register()
    model = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    conversations = [
        [{"role": "user", "content": [{"type": "image", "image": im}, {"type": "text", "text": PAPER_PROMPT}]}] for im in images
    ]
    inputs = processor.apply_chat_template(
        conversations, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt",
        processor_kwargs={"padding": True},
    )
    seen = []
    handle = model.get_submodule(path).register_forward_hook(lambda m, i, o: seen.append(o))
    with torch.no_grad():
        model(**inputs)
    handle.remove()
    out = seen[0]
    if layout == "flattened":
        counts = inputs["image_grid_thw"].prod(-1).tolist()
        return [out[: counts[0]], out[counts[0] :]]
    if layout == "per_image":
        return [out[0], out[1]]
    return [out[b][inputs["input_ids"][b] == image_token_id] for b in range(len(images))]


@pytest.mark.parametrize("family,kind,path,rows,width", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_activations_match_hand_counts_and_a_plain_forward_hook(tiny_model_dir, two_images, family, kind, path, rows, width):
    model_dir = tiny_model_dir(family)
    short = f"{kind}.1"
    extractor = make(family, model_dir, short)
    assert extractor.source()["layer"] == path
    assert extractor.width == width
    acts = extractor.activations(two_images)
    assert [tuple(a.shape) for a in acts] == [(n, width) for n in rows]
    assert all(a.dtype == torch.float32 and a.device.type == "cpu" for a in acts)

    layout = "sequence" if kind == "language" else ("flattened" if family == "qwen3_vl" else "per_image")
    token_id = extractor._model.config.image_token_id if kind == "language" else None
    reference = plain_hook_reference(model_dir, path, two_images, layout, token_id)
    for got, want in zip(acts, reference):
        torch.testing.assert_close(got, want.float(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", ["qwen3_vl", "gemma3", "llava"])
def test_token_choice_splits_the_attended_prompt(tiny_model_dir, two_images, family):
    model_dir = tiny_model_dir(family)
    counts = {tokens: [a.shape[0] for a in make(family, model_dir, "language.0", tokens=tokens).activations(two_images)]
              for tokens in ("image", "text", "all")}
    assert [i + t for i, t in zip(counts["image"], counts["text"])] == counts["all"]
    assert counts["text"][0] == counts["text"][1]  # same prompt around each image; padding never kept
    assert min(counts["text"]) > len(PAPER_PROMPT.split())


@pytest.mark.parametrize("family,layer", [("qwen3_vl", "language.1"), ("gemma3", "language.1"), ("llava", "vision.0")])
def test_batching_does_not_change_an_image_s_activations(tiny_model_dir, two_images, family, layer):
    extractor = make(family, tiny_model_dir(family), layer, tokens="all" if layer.startswith("language") else "image")
    together = extractor.activations(two_images)
    alone = [extractor.activations([image])[0] for image in two_images]
    for a, b in zip(together, alone):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_forward_stops_at_the_hooked_layer(tiny_model_dir, two_images):
    extractor = make("qwen3_vl", tiny_model_dir("qwen3_vl"), "vision.0")
    calls = []
    later = extractor._model.get_submodule("model.language_model.layers.0")
    handle = later.register_forward_hook(lambda *args: calls.append(1))
    try:
        extractor.activations(two_images)
    finally:
        handle.remove()
    assert calls == []


def test_text_tokens_at_a_vision_layer_are_refused(tiny_model_dir, two_images):
    extractor = make("gemma3", tiny_model_dir("gemma3"), "vision.1", tokens="text")
    with pytest.raises(BadInput, match="image patches only"):
        extractor.activations(two_images)


def test_llava_vision_layers_start_with_a_class_token(tiny_model_dir):
    assert make("llava", tiny_model_dir("llava"), "vision.0").has_class_token
    assert not make("llava", tiny_model_dir("llava"), "language.0").has_class_token
    assert not make("qwen3_vl", tiny_model_dir("qwen3_vl"), "vision.0").has_class_token


def test_a_family_extractor_refuses_another_family_s_model(tiny_model_dir):
    with pytest.raises(BadInput, match="'gemma3' model"):
        make("llava", tiny_model_dir("gemma3"), "language.0")


def test_missing_model_directory_is_bad_input(tmp_path):
    with pytest.raises(ValidationError, match="does not exist"):  # refused with the options, before any lookup
        make("llava", tmp_path / "nowhere", "language.0")
    with pytest.raises(BadInput, match="cannot load model"):
        make("llava", tmp_path, "language.0")  # a folder without a model


def test_hf_module_hooks_any_module_by_its_full_path(tiny_model_dir, two_images):
    model_dir = tiny_model_dir("llava")
    extractor = HFModuleExtractor(HFModuleExtractor.Config(model=str(model_dir), layer="model.multi_modal_projector", device="cpu"))
    acts = extractor.activations(two_images)
    assert extractor.width == 64  # from a probe forward: the projector's output width
    assert [tuple(a.shape) for a in acts] == [(196, 64), (196, 64)]
    family = make("llava", model_dir, "language.1")
    generic = HFModuleExtractor(HFModuleExtractor.Config(model=str(model_dir), layer="model.language_model.layers.1", device="cpu"))
    for a, b in zip(family.activations(two_images), generic.activations(two_images)):
        torch.testing.assert_close(a, b)


def test_hf_module_on_a_vision_only_model(tmp_path, two_images):
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    model = CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                             num_attention_heads=2, image_size=64, patch_size=16))
    model.save_pretrained(tmp_path)
    CLIPImageProcessor(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64}).save_pretrained(tmp_path)
    extractor = HFModuleExtractor(HFModuleExtractor.Config(model=str(tmp_path), layer="encoder.layers.1", device="cpu", class_token=True))
    acts = extractor.activations(two_images)
    assert [tuple(a.shape) for a in acts] == [(1 + 16, 32), (1 + 16, 32)]
    assert extractor.has_class_token
    text = HFModuleExtractor(HFModuleExtractor.Config(model=str(tmp_path), layer="encoder.layers.1", device="cpu", tokens="text"))
    with pytest.raises(BadInput, match="image patches only"):
        text.activations(two_images)


def test_qwen3_vl_loads_a_checkpoint_that_names_the_stock_processor(tiny_model_dir, tmp_path, two_images):
    """Real Qwen3-VL checkpoints name ``Qwen3VLProcessor``, which needs torchvision to build."""
    import shutil

    stock = shutil.copytree(tiny_model_dir("qwen3_vl"), tmp_path / "stock")
    for path in stock.glob("*.json"):
        path.write_text(path.read_text().replace("Qwen3VLImageOnlyProcessor", "Qwen3VLProcessor"))
    acts = make("qwen3_vl", stock, "visual.blocks.1").activations(two_images)
    assert [a.shape[0] for a in acts] == [14 * 14, 6 * 10]


@pytest.mark.parametrize("family,kind,path,rows,width", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_store_image_offsets_match_the_hand_counts(tiny_model_dir, two_images, registered, tmp_path, family, kind, path, rows, width):
    folder = tmp_path / "images" / "any"
    folder.mkdir(parents=True)
    for name, image in zip(["a.png", "b.png"], two_images):
        image.save(folder / name)
    spec = {"extractor": {"name": family, "model": str(tiny_model_dir(family)), "layer": f"{kind}.1", "device": "cpu"},
            "dataset": {"name": "image_folder", "root": str(tmp_path / "images")}}
    run_extraction(spec, tmp_path / "store.h5", lambda done, total: None)
    with ActivationStore(tmp_path / "store.h5") as store:
        index = store.image_index()
        assert store.width == width and store.attrs["layer"] == path
    assert np.searchsorted(index, [0, 1]).tolist() == [0, rows[0]]  # each image's first row
    assert np.bincount(index).tolist() == rows
