"""``python -m benchmarks.float_order RECIPE``: how far a recipe's training drifts when only the
order of float sums changes. Trains the recipe's model three ways on the same batches: one
process (the reference), one process with each batch's two halves swapped (the same rows, summed
in another order), and two data-parallel processes (torchrun, gloo); prints, per checkpoint, the
relative difference of each level's decoder from the reference as Markdown, with the commit.

A data-parallel run is exact in meaning, not in bits: where the swapped-halves run drifts as far
as the two-process run, the difference is the recipe's sensitivity to summation order
(docs/distributed.md).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file
from scipy.optimize import linear_sum_assignment

from hsae import distributed, registry
from hsae.recipe.load import load_recipe
from hsae.run.run_dir import RunDir
from hsae.store import ActivationStore
from hsae.train.trainer import Trainer


class SwappedHalves(ActivationStore):
    """The store's batches with their first and second halves swapped."""

    def batches(self, batch_size: int, seed: int, start_step: int = 0, part: tuple[int, int] = (0, 1)):
        for x in super().batches(batch_size, seed, start_step, part):
            half = x.shape[0] // 2
            yield torch.cat([x[half:], x[:half]])


def train(recipe_path: str, store_path: Path, out: Path, swapped: bool = False) -> None:
    """Train the recipe's model on the store into ``out`` (checkpoints every 500 steps, all kept)."""
    recipe = load_recipe(Path(recipe_path))
    train_cfg = recipe.train.model_copy(update={"checkpoint_every": 500, "keep_checkpoints": 1000})
    train_cfg.device = distributed.join(train_cfg.device)
    with (SwappedHalves if swapped else ActivationStore)(store_path) as store:
        Trainer(recipe.model.cascade_config(), train_cfg, store, RunDir(out), recipe.data.normalize).fit()
    distributed.leave()


def level_drift(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], l: int) -> float:
    """‖W_dec − W_dec_ref‖ / ‖W_dec_ref‖ of level l. A settled level numbers its concepts in no
    particular order: its latents in use are compared after matching b's to a's (assignment on
    the cosine); when the counts differ, the unmatched ones are left out."""
    ref, other = a[f"levels.{l}.W_dec"], b[f"levels.{l}.W_dec"]
    alive = f"concepts.{l}.alive"
    if alive in a:
        ref, other = ref[:, a[alive]], other[:, b[alive]]
        rows, cols = linear_sum_assignment(-(ref.t() @ other).numpy())
        ref, other = ref[:, rows], other[:, cols]
    return float((other - ref).norm() / ref.norm())


def drift(reference: Path, other: Path, depth: int) -> list[tuple[int, list[float]]]:
    """(step, the drift of each level) at every checkpoint of both runs."""
    rows = []
    for folder in sorted((reference / "checkpoints").glob("step-*")):
        theirs = other / "checkpoints" / folder.name / "model.safetensors"
        if theirs.exists():
            a, b = load_file(folder / "model.safetensors"), load_file(theirs)
            rows.append((int(folder.name.split("-")[1]), [level_drift(a, b, l) for l in range(1, depth + 1)]))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.float_order", description=__doc__.splitlines()[0])
    parser.add_argument("recipe", help="a recipe with a data.dataset source (e.g. recipes/quickstart.yaml)")
    parser.add_argument("--worker", nargs=2, metavar=("STORE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:  # one of the two data-parallel processes
        train(args.recipe, Path(args.worker[0]), Path(args.worker[1]))
        return
    recipe = load_recipe(Path(args.recipe))
    if recipe.data.dataset is None or recipe.model.method != "cascade":
        raise SystemExit("float_order needs a cascade recipe whose data is a dataset plugin (data.dataset)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = root / "store.h5"
        registry.create("hsae.datasets", recipe.data.dataset).write_store(store)
        train(args.recipe, store, root / "one")
        train(args.recipe, store, root / "swapped", swapped=True)
        subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                        "-m", "benchmarks.float_order", args.recipe, "--worker", str(store), str(root / "two")],
                       check=True)
        depth = len(recipe.model.levels)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        print(f"{args.recipe}, code at commit {commit or 'unknown'}, torch {torch.__version__}: relative difference "
              "‖W_dec − W_dec(one process)‖ / ‖W_dec(one process)‖ per level (a settled level's concepts "
              "matched first)\n")
        print("| step | " + " | ".join(f"{how}, level {l}" for how in ("halves swapped", "two processes")
                                      for l in range(1, depth + 1)) + " |")
        print("|---:|" + "---:|" * (2 * depth))
        swapped, two = dict(drift(root / "one", root / "swapped", depth)), dict(drift(root / "one", root / "two", depth))
        for step in sorted(swapped):
            cells = [f"{v:.2e}" for v in swapped[step] + two.get(step, [float("nan")] * depth)]
            print(f"| {step} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
