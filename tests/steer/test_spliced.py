"""Spliced evaluation on a tiny Qwen3-VL (a language layer: zero-ablating it costs a lot of loss,
so loss recovered is well conditioned): loss recovered is exactly 1 when the write-back is the
identity, and CE, KL and loss recovered match a hand computation with a hand-written hook."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hsae.intervene.model_sae import ModelSAE
from hsae.intervene.run_model import RunModel
from hsae.intervene.spliced import SplicedConfig, spliced_evaluation
from hsae.run.run_dir import RunDir
from hsae.sae.sae import SAE
from hsae_plugins.datasets.synthetic_colors import SyntheticColors
from hsae_plugins.encoders.topk import TopKEncoder

SCALE = 0.5
IMAGES = {"name": "synthetic_colors", "n_images": 4, "seed": 3}


@pytest.fixture(scope="module")
def run_model(tiny_model_dir, tmp_path_factory):
    torch.manual_seed(0)
    sae = SAE(64, 96, TopKEncoder(TopKEncoder.Config(k=8), n_inputs=64, n_latents=96))
    tree = {"extract": {"extractor": {"name": "qwen3_vl", "model": str(tiny_model_dir("qwen3_vl")),
                                      "layer": "language.1", "device": "cpu"}, "dataset": IMAGES}}
    root = tmp_path_factory.mktemp("spliced")
    return RunModel(RunDir(root), tree, ModelSAE(sae, 0, 96), SCALE, root / "no-store.h5")


def config(**extra) -> SplicedConfig:
    return SplicedConfig(images=IMAGES, exclude_training=False, n_images=4, continuation=4, batch_size=2, **extra)


def test_identity_write_back_recovers_all_the_loss(run_model):
    result = spliced_evaluation(run_model, config(write_back="error_preserving"))
    assert result["ce_sae"] == result["ce_clean"] and result["kl_sae"] == 0.0
    assert result["loss_recovered"] == 1.0
    assert result["ce_zero"] != result["ce_clean"] and result["kl_zero"] > 0
    assert result["images"] == 4 and result["positions"] > 0


def test_matches_a_hand_computation(run_model):
    result = spliced_evaluation(run_model, config(write_back="reconstruction", code="encoder"))
    extractor = run_model.extractor()
    module, sae = extractor.target_module, run_model.sae.sae
    images = [item.image for item in SyntheticColors(SyntheticColors.Config(n_images=4, seed=3))]
    prompt = extractor.config.prompt

    def logits_with(replace):
        handle = None if replace is None else module.register_forward_hook(lambda m, i, out: replace(out), prepend=True)
        try:
            return [extractor.token_logits(images[s:s + 2], prompt, answers[s:s + 2]) for s in (0, 2)]
        finally:
            if handle is not None:
                handle.remove()

    answers = extractor.generate(images[:2], prompt, 4) + extractor.generate(images[2:], prompt, 4)
    with torch.no_grad():
        runs = {"clean": logits_with(None),
                "sae": logits_with(lambda out: (sae(out.reshape(-1, 64) * SCALE).x_hat / SCALE).reshape(out.shape)),
                "zero": logits_with(lambda out: torch.zeros_like(out))}
    ce, kl = {}, {}
    for name, batches in runs.items():
        nll = positions = divergence = 0.0
        for batch, clean in zip(batches, runs["clean"]):
            logits, targets = batch.logits[clean.mask], clean.targets[clean.mask]
            nll += F.cross_entropy(logits, targets, reduction="sum").item()
            p, q = clean.logits[clean.mask].softmax(-1), logits.softmax(-1)
            divergence += (p * (p.log() - q.log())).sum().item()
            positions += targets.numel()
        ce[name], kl[name] = nll / positions, divergence / positions
    assert result["positions"] == positions
    for name in ("clean", "sae", "zero"):
        assert result[f"ce_{name}"] == pytest.approx(ce[name], rel=1e-5)
    assert result["kl_sae"] == pytest.approx(kl["sae"], rel=1e-4, abs=1e-7)
    # the hand CEs agree to float rounding (sae(x).x_hat decodes through the sparse path, the
    # hook densely); loss recovered, a ratio of their differences, is that formula of the CEs
    recovered = (result["ce_zero"] - result["ce_sae"]) / (result["ce_zero"] - result["ce_clean"])
    assert result["loss_recovered"] == recovered and recovered != 1.0
    assert recovered == pytest.approx((ce["zero"] - ce["sae"]) / (ce["zero"] - ce["clean"]), rel=1e-3)
