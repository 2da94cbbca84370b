"""One process of data-parallel training runs for the tests: ``python train_worker.py SPEC…``,
started alone (one process) or by torchrun (several). Each SPEC is a JSON file with the
store's path, the ``model`` and ``train`` sections and the run folder ``out``; they are
trained one after another (one start-up for several runs)."""

import json
import sys
from pathlib import Path

import torch

from hsae.cascade.config import CascadeConfig
from hsae.recipe.schema import TrainConfig
from hsae.run.run_dir import RunDir
from hsae.store import ActivationStore
from hsae import distributed
from hsae.train.trainer import Trainer

if __name__ == "__main__":
    torch.set_num_threads(1)
    for path in sys.argv[1:]:
        spec = json.loads(Path(path).read_text())
        train = TrainConfig.model_validate(spec["train"])
        train.device = distributed.join(train.device)
        with ActivationStore(spec["store"]) as store:
            Trainer(CascadeConfig.model_validate(spec["model"]), train, store, RunDir(Path(spec["out"]))).fit()
    distributed.leave()
