"""The cascade's dynamic mask under data parallelism is the union of the processes' active
sets: two gloo processes whose level-1 codes fire different latents both feed level 2 the
atoms fired anywhere in the global batch, as one process does on the whole batch."""

from __future__ import annotations

import json

import torch

from hsae.cascade.cascade import Cascade
from hsae.cascade.config import CascadeConfig

from launch import run, script, torchrun


def test_level_2_sees_the_union_of_the_processes_active_sets(tmp_path):
    run(torchrun(2, script("union_worker.py"), str(tmp_path)))
    ranks = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in range(2)]
    for result in ranks:
        assert result["alone"] == {"n_active": 2, "n_inputs_2": 2}  # each process fires 2 latents of its own
        assert result["together"]["n_active"] == 4 and result["together"]["n_inputs_2"] == 4  # the union
        assert result["together"]["n_inputs_1"] == 4  # the global batch's rows
        assert result["fired"] == [0, 1, 2, 3]  # the firing monitor counts the union too
    assert ranks[0]["together"]["loss_2"] == ranks[1]["together"]["loss_2"]  # the same atoms everywhere

    config = CascadeConfig.model_validate({"levels": [
        {"n_latents": 8, "encoder": {"name": "topk", "k": 1}, "b_dec_init": "zeros"},
        {"n_latents": 2, "encoder": {"name": "topk", "k": 1}, "b_dec_init": "zeros", "lambda": 1.0}]})
    cascade = Cascade(8, config)
    cascade.reset_parameters(torch.Generator().manual_seed(0))
    with torch.no_grad():
        cascade.level(1).W_enc.copy_(torch.eye(8))
        cascade.level(1).W_dec.copy_(torch.eye(8))
    whole = cascade(torch.eye(8)[:4], 0)  # one process, the whole batch
    assert whole.levels[0].n_active == 4
    assert float(whole.levels[1].loss) == ranks[0]["together"]["loss_2"]
