"""`hsae export --format saelens`: each level loads in the real SAELens (SAE.load_from_disk) and
gives hsae's codes and reconstructions on the same raw activations."""

from __future__ import annotations

import json

import pytest
import torch
from sae_lens import SAE

import hsae
from hsae.interop.export import export_run
from hsae.interop.saelens import read_saelens
from hsae.store import ActivationStore


def raw_rows(run, n=300) -> torch.Tensor:
    store = ActivationStore(json.loads((run / "config.json").read_text())["store"])
    return torch.as_tensor(store.rows(0, n), dtype=torch.float32)


@pytest.mark.parametrize("name", ["cascade", "batchtopk", "jumprelu"])
def test_every_level_loads_in_saelens_with_the_same_codes_and_reconstructions(tiny_runs, tmp_path, name):
    run = tiny_runs[name]
    folders = export_run(run, tmp_path / "out")
    model = hsae.load(run)
    assert model.scale != 1.0  # the folding is exercised
    assert [f.name for f in folders] == [f"level-{l}" for l in range(1, model.depth + 1)]
    assert (tmp_path / "out" / "hierarchy.json").exists()
    x = raw_rows(run)
    for l, folder in enumerate(folders, start=1):
        cfg = json.loads((folder / "cfg.json").read_text())
        assert cfg["normalize_activations"] == "none" and cfg["apply_b_dec_to_input"] is True
        assert cfg["metadata"]["sae_lens_version"] and "hook_name" in cfg["metadata"]
        sae = SAE.load_from_disk(folder)
        codes, ours = sae.encode(x), model.encode(x, l)
        assert (ours > 0).sum() > 0
        torch.testing.assert_close(codes, ours, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(sae.decode(codes), model.decode(ours, l), atol=1e-5, rtol=1e-5)


def test_architectures_as_saelens_names_them(tiny_runs, tmp_path):
    arch = {}
    for name in ("cascade", "batchtopk", "jumprelu"):
        for folder in export_run(tiny_runs[name], tmp_path / name):
            arch[(name, folder.name)] = json.loads((folder / "cfg.json").read_text())["architecture"]
    assert arch == {("cascade", "level-1"): "topk", ("cascade", "level-2"): "gated",
                    ("batchtopk", "level-1"): "jumprelu", ("batchtopk", "level-2"): "jumprelu",
                    ("jumprelu", "level-1"): "jumprelu", ("jumprelu", "level-2"): "standard"}
    cfg = json.loads((tmp_path / "cascade" / "level-1" / "cfg.json").read_text())
    assert cfg["k"] == 3


def test_a_folder_read_back_gives_the_same_sae(tiny_runs, tmp_path):
    """read_saelens inverts the export (up to the scale's float rounding)."""
    run = tiny_runs["cascade"]
    folder = export_run(run, tmp_path)[0]
    level = read_saelens(folder)
    model = hsae.load(run)
    sae = model.sae(1)
    assert level.encoder == {"name": "topk", "k": 3}
    torch.testing.assert_close(level.state["W_enc"], sae.W_enc * model.scale)
    torch.testing.assert_close(level.state["W_dec"], sae.W_dec / model.scale)
