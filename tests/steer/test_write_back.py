"""The write-back hook inside ``generate`` of a tiny model of each family: a clamped cluster
changes the tokens, α = 0 on inactive atoms with ``error_preserving`` changes nothing, and the
model is the unhooked one afterwards, after an exception too."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from hsae import registry
from hsae.interfaces.extraction.hooks import capture_output
from hsae.intervene.write_back import Splice, code_of, replace_output, rewrite, spliced
from hsae.sae.sae import SAE
from hsae.steer.run import clamp_edit
from hsae_plugins.encoders.relu import ReLUEncoder

from steerkit import FAMILY_LAYERS

N_LATENTS = 32
PROMPT = "Describe what is in this image in one short sentence."


def random_sae(width: int, seed: int = 0) -> SAE:
    torch.manual_seed(seed)
    return SAE(width, N_LATENTS, ReLUEncoder(n_inputs=width, n_latents=N_LATENTS))


def images():
    return [Image.new("RGB", (64, 64), (200, 30, 30)), Image.effect_noise((64, 64), 40).convert("RGB")]


def module_output(extractor, pictures) -> torch.Tensor:
    inputs = extractor._inputs(pictures, PROMPT)
    with torch.inference_mode():
        return capture_output(extractor.target_module, lambda: extractor._model(**inputs), stop=True)


@pytest.fixture(scope="module")
def extractors(tiny_model_dir):
    built = {}

    def get(family: str, layer: str):
        if (family, layer) not in built:
            extractor = registry.create("hsae.extractors", {"name": family, "model": str(tiny_model_dir(family)),
                                                            "layer": layer, "device": "cpu"})
            extractor.load()
            built[(family, layer)] = extractor
        return built[(family, layer)]

    return get


@pytest.mark.parametrize("family,layer", FAMILY_LAYERS)
def test_cluster_clamp_changes_tokens_and_the_hook_goes_away(extractors, family, layer):
    extractor = extractors(family, layer)
    pictures = images()
    clean_logits = extractor.token_logits(pictures, PROMPT).logits
    baseline = extractor.generate(pictures, PROMPT, 8)
    sae = random_sae(extractor.width)
    cluster = clamp_edit([0, 1, 2, 3], 200.0)
    with spliced(extractor.target_module, Splice(sae, 1.0, "reconstruction", "relu", cluster)) as calls:
        steered = extractor.generate(pictures, PROMPT, 8)
    assert calls[0] >= 1
    assert steered != baseline
    # the hook is gone: same tokens and bit-identical logits as before
    assert extractor.generate(pictures, PROMPT, 8) == baseline
    assert torch.equal(extractor.token_logits(pictures, PROMPT).logits, clean_logits)


@pytest.mark.parametrize("family,layer", FAMILY_LAYERS)
def test_zero_clamp_on_inactive_atoms_changes_nothing(extractors, family, layer):
    extractor = extractors(family, layer)
    pictures = images()
    sae = random_sae(extractor.width, seed=1)
    with torch.no_grad():
        sae.b_enc[:4] = -1e4  # atoms 0-3 never fire on these inputs
    rows = module_output(extractor, pictures).reshape(-1, extractor.width)
    assert not code_of(sae, rows, "relu")[:, :4].any()
    clean_logits = extractor.token_logits(pictures, PROMPT).logits
    baseline = extractor.generate(pictures, PROMPT, 8)
    edit = clamp_edit([0, 1, 2, 3], 0.0)
    with spliced(extractor.target_module, Splice(sae, 3.0, "error_preserving", "relu", edit)) as calls:
        assert extractor.generate(pictures, PROMPT, 8) == baseline
        assert torch.equal(extractor.token_logits(pictures, PROMPT).logits, clean_logits)
    assert calls[0] >= 2
    # whereas the reconstruction write-back of the same code does change the model
    with spliced(extractor.target_module, Splice(sae, 3.0, "reconstruction", "relu", edit)):
        assert not torch.equal(extractor.token_logits(pictures, PROMPT).logits, clean_logits)


def test_the_hook_is_removed_when_the_block_raises(extractors):
    extractor = extractors("qwen3_vl", "vision.1")
    pictures = images()
    clean = extractor.token_logits(pictures, PROMPT).logits
    splice = Splice(random_sae(extractor.width), 1.0, "zero")
    with pytest.raises(RuntimeError, match="boom"):
        with spliced(extractor.target_module, splice):
            assert not torch.equal(extractor.token_logits(pictures, PROMPT).logits, clean)
            raise RuntimeError("boom")
    assert not extractor.target_module._forward_hooks
    assert torch.equal(extractor.token_logits(pictures, PROMPT).logits, clean)


def test_rewrite_formulas_and_the_activation_scale():
    sae = random_sae(8)
    h = torch.randn(3, 5, 8)  # (B, T, d): rows are encoded one by one whatever the leading shape
    scale = 2.5
    x = h.reshape(-1, 8) * scale
    z = torch.relu((x - sae.b_dec) @ sae.W_enc.t() + sae.b_enc)
    edit = clamp_edit([1, 4], 0.7)
    z_edit = z.clone()
    z_edit[:, [1, 4]] = 0.7
    recon = rewrite(h, Splice(sae, scale, "reconstruction", "relu", edit))
    assert torch.allclose(recon, ((z_edit @ sae.W_dec.t() + sae.b_dec) / scale).reshape(h.shape), atol=1e-6)
    preserved = rewrite(h, Splice(sae, scale, "error_preserving", "relu", edit))
    assert torch.allclose(preserved, h + ((z_edit - z) @ sae.W_dec.t() / scale).reshape(h.shape), atol=1e-6)
    assert torch.equal(rewrite(h, Splice(sae, scale, "error_preserving", "encoder")), h)
    assert torch.equal(rewrite(h, Splice(sae, scale, "zero")), torch.zeros_like(h))


def test_outputs_of_every_form_are_rewritten():
    new = torch.ones(2)
    assert replace_output(torch.zeros(2), new) is new
    out = replace_output((None, torch.zeros(2), "x"), new)
    assert out[1] is new and out[0] is None and out[2] == "x"
    mapping = {"meta": 1, "last_hidden_state": torch.zeros(2)}
    assert replace_output(mapping, new)["last_hidden_state"] is new


def test_a_module_returning_a_tuple_is_hooked():
    class Block(torch.nn.Module):
        def forward(self, x):
            return (x * 2, "cache")

    block, sae = Block(), random_sae(8)
    x = torch.randn(4, 8)
    with spliced(block, Splice(sae, 1.0, "zero")):
        out = block(x)
    assert torch.equal(out[0], torch.zeros(4, 8)) and out[1] == "cache"
    assert torch.equal(block(x)[0], x * 2)
