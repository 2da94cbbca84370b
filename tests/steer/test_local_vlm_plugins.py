"""The hf_vlm judge and the vlm labeller on a tiny offline model: they load the model by its
family, ask per row / per unit, and a tiny random model's unreadable answers become per-row
errors that keep the raw answer. A folder that is not a model fails at once."""

from __future__ import annotations

import pytest
from PIL import Image

from hsae import registry
from hsae.errors import BadInput
from hsae.interfaces.judge import JudgeRow
from hsae.interfaces.labeller import UnitEvidence

IMAGES = [Image.new("RGB", (48, 48), (200, 30, 30)), Image.effect_noise((48, 48), 40).convert("RGB")]


@pytest.mark.parametrize("family", ["qwen3_vl", "gemma3"])
def test_hf_vlm_judge_answers_every_row(tiny_model_dir, family):
    judge = registry.create("hsae.judges", {"name": "hf_vlm", "model": str(tiny_model_dir(family)), "device": "cpu",
                                            "max_new_tokens": 6, "batch_size": 2})
    rows = [JudgeRow(f"r{i}", "red", ["red"], {"baseline": "a box", "cluster": "a red box"}, image)
            for i, image in enumerate(IMAGES * 2)]
    out = judge.judge(rows)
    assert len(out) == 4
    for verdicts in out:
        assert set(verdicts) == {"baseline", "cluster"}
        for verdict in verdicts.values():  # random weights: never the JSON asked for
            assert verdict.expressed is None and verdict.error.startswith("malformed answer")
            assert isinstance(verdict.raw, str)


def test_vlm_labeller_captions_the_top_images(tiny_model_dir):
    labeller = registry.create("hsae.labellers", {"name": "vlm", "model": str(tiny_model_dir("llava")), "device": "cpu",
                                                  "max_new_tokens": 12, "max_images": 2})
    unit = UnitEvidence("2:0", 2, 0, ["a", "b", "c"], [None] * 3, [0, 1, 2], IMAGES + IMAGES[:1])
    (label,) = labeller.label([unit])
    assert len(label.raw.splitlines()) <= 2  # one caption per shown image
    assert (label.label is None) == (label.error is not None)


@pytest.mark.parametrize("group,name", [("hsae.judges", "hf_vlm"), ("hsae.labellers", "vlm")])
def test_a_missing_model_folder_fails_at_once(tmp_path, group, name):
    with pytest.raises(BadInput, match="not a local model directory"):
        registry.create(group, {"name": name, "model": str(tmp_path / "nowhere")})


def test_vlm_label_is_the_word_the_captions_share_most(tiny_model_dir, monkeypatch):
    labeller = registry.create("hsae.labellers", {"name": "vlm", "model": str(tiny_model_dir("llava")), "device": "cpu"})
    captions = ["A red car on the road.", "The image shows a red red truck.", "A red bus near a car."]
    monkeypatch.setattr(labeller.model, "generate", lambda images, prompt, n: captions[:len(images)])
    (label,) = labeller.label([UnitEvidence("1:3", 1, 3, ["a", "b", "c"], [None] * 3, [0, 1, 2], IMAGES + IMAGES[:1])])
    assert label.label == "red" and label.keywords == ["red", "car", "road"] and label.raw == "\n".join(captions)
    monkeypatch.setattr(labeller.model, "generate", lambda images, prompt, n: ["a", "of the"][:len(images)])
    (empty,) = labeller.label([UnitEvidence("1:4", 1, 4, ["a", "b"], [None] * 2, [0, 1], IMAGES)])
    assert empty.label is None and "no content word" in empty.error
