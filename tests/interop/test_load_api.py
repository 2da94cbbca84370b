"""``hsae.load``: every method's run read back on raw activations."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import hsae
from interopkit import TINY, train_tiny
from hsae.errors import BadInput
from hsae.store import ActivationStore


def rows(run, n=200):
    store = ActivationStore(json.loads((run / "config.json").read_text())["store"])
    return torch.as_tensor(store.rows(0, n), dtype=torch.float32)


def test_cascade_codes_scale_and_hierarchy(tiny_runs):
    run = tiny_runs["cascade"]
    model = hsae.load(run)
    x = rows(run)
    z = model.encode(x, level=1)
    assert z.shape == (200, 32) and ((z > 0).sum(1) == 3).all()
    sae = model.sae(1)
    torch.testing.assert_close(z, sae.encode(x * model.scale).z)  # the scale is applied
    torch.testing.assert_close(model.decode(z), sae.decode(z) / model.scale)
    torch.testing.assert_close(model.decode(z), z @ model.atoms(1) + sae.b_dec / model.scale)
    hierarchy = json.loads((run / "hierarchy.json").read_text())
    assert model.parents(1).tolist() == hierarchy["levels"][0]["parent"]
    parent = int(np.flatnonzero(model.parents(1) >= 0)[0])
    assert parent in model.children(2, int(model.parents(1)[parent]))
    with pytest.raises(BadInput, match="top level"):
        model.parents(2)
    with pytest.raises(BadInput, match="rows of width 16"):
        model.encode(torch.zeros(3, 5))


@pytest.mark.parametrize("method", ["stacked", "hac", "matryoshka"])
def test_every_baseline_loads_and_encodes_every_level(tmp_path, method):
    levels = [{"n_latents": 24, "encoder": {"name": "topk", "k": 3}}, {"n_latents": 6, "encoder": {"name": "topk", "k": 1}}]
    run = train_tiny(tmp_path / method, {"method": method, "levels": levels}, train={**TINY["train"], "steps": 30})
    model = hsae.load(run)
    x = rows(run)
    assert model.widths == [24, 6] and model.method == method
    for level, width in ((1, 24), (2, 6)):
        assert model.encode(x, level).shape == (200, width)
        assert model.atoms(level).shape[0] == width
    assert len(model.parents(1)) == 24
    if model.sae(1) is not None:
        assert model.decode(model.encode(x, 1), 1).shape == x.shape


def test_labels_are_read_from_labels_json(tiny_runs, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(tiny_runs["cascade"], run)
    (run / "labels.json").write_text(json.dumps({"units": {"2:1": {"label": "vehicles"}, "1:4": {"label": "car"}}}))
    assert hsae.load(run).labels == {(2, 1): "vehicles", (1, 4): "car"}
    (run / "labels.json").write_text("[]")
    with pytest.raises(BadInput, match="not a labels file"):
        hsae.load(run)


def test_a_missing_run_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match="no such run directory"):
        hsae.load(tmp_path / "nope")
