"""Started by torchrun as 2 processes: a two-level cascade whose level 1 fires different
latents on each process's rows (process r's rows are the unit vectors e_{2r}, e_{2r+1}, and
level 1's atoms are the unit vectors). Writes, per process, the level-2 active set size and
the level-2 loss to OUT/rank-R.json."""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from hsae import distributed
from hsae.cascade.cascade import Cascade
from hsae.cascade.config import CascadeConfig
from hsae.interfaces.data_parallel import rows_split_over

if __name__ == "__main__":
    distributed.join("cpu")
    rank = dist.get_rank()
    config = CascadeConfig.model_validate({"levels": [
        {"n_latents": 8, "encoder": {"name": "topk", "k": 1}, "b_dec_init": "zeros"},
        {"n_latents": 2, "encoder": {"name": "topk", "k": 1}, "b_dec_init": "zeros", "lambda": 1.0}]})
    torch.manual_seed(0)
    cascade = Cascade(8, config)
    cascade.reset_parameters(torch.Generator().manual_seed(0))
    with torch.no_grad():
        cascade.level(1).W_enc.copy_(torch.eye(8))
        cascade.level(1).W_dec.copy_(torch.eye(8))
    x = torch.eye(8)[2 * rank:2 * rank + 2]
    alone = cascade(x, 0)  # this process's rows by themselves
    with rows_split_over(distributed.group()):
        together = cascade(x, 0)
    Path(sys.argv[1], f"rank-{rank}.json").write_text(json.dumps({
        "alone": {"n_active": alone.levels[0].n_active, "n_inputs_2": alone.levels[1].n_inputs},
        "together": {"n_active": together.levels[0].n_active, "n_inputs_2": together.levels[1].n_inputs,
                     "n_inputs_1": together.levels[0].n_inputs, "loss_2": float(together.levels[1].loss.detach())},
        "fired": sorted(cascade.monitors["1"].steps_since_fired.eq(0).nonzero().squeeze(1).tolist()),
    }))
    distributed.leave()
