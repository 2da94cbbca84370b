"""Computed (not measured) training cost of every recipe in recipes/paper/ on one GPU; writes the
table into docs/paper.md between its paper_cost markers, naming the commit.

    .venv/bin/python scripts/paper_cost.py            # rewrite the block in docs/paper.md
    .venv/bin/python scripts/paper_cost.py --check    # exit 1 when the block is not what this tree gives
    .venv/bin/python scripts/paper_cost.py --tflops 60 --print   # another sustained rate, to the terminal

Each recipe is read with the project's loader and its variants expanded (hsae.run.variants), so
the numbers follow the YAML. Per variant, the floating-point work of training is summed over
its steps from what the method does each step (hsae/methods/, hsae/cascade/):

- an SAE step on R rows of width w into n latents, every product dense: the forward's two
  products (encode, decode) and twice that in the backward, 12·R·w·n (6 per weight and row;
  level 1 needs no gradient of its inputs, so this is an upper bound by up to 1/6). A Gated
  level adds its auxiliary decode of the gate code (forward and input gradient), 4·R·w·n;
- the same step on hsae's sparse path (TopK and BatchTopK while k/n ≤ 1/8, hsae.sae.sparse):
  one dense projection without autograd, 2·R·w·n, and the 12 per weight and row on the k
  selected latents only, 12·R·w·k;
- flat baselines (BatchTopK, TopK, ReLU, Gated, JumpReLU, P-Anneal): one SAE per level on the
  B activation rows, every level from step 0;
- Matryoshka: one SAE of n₁ + n₂ latents on the rows; its nested prefixes are decoded densely
  (forward and backward, 6·B·d·n) and the level-2 prefix once more for the figures (2·B·d·n₂);
- Stacked: level 1 on the rows; level 2 on the level-1 codes (width n₁) from its start step;
- the cascade and its stop-gradient ablations: level 1 on the rows; from its start step, level 2
  on the level-1 atoms live in the batch, at most min(n₁, ⌈k₁(t)·B⌉) rows of width d (k₁(t)
  the annealed budget per row), counted at that bound;
- HAC and SC: level 1 only (the clustering of the atoms runs once, on the CPU, and is not counted).

k(t) follows each encoder's k annealing (hsae_plugins.encoders.k_anneal). Not counted: the
optimiser update (about 10 FLOPs per weight, under 1 % of a step at batch 1,024), thresholds,
top-k selection, data loading, evaluation (HMS) and extraction.
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes" / "paper"
DOC = ROOT / "docs" / "paper.md"
START, END = "<!-- paper_cost:start -->", "<!-- paper_cost:end -->"

ACTIVATION_WIDTHS = {
    # (extractor model id, part of the model the layer is in): (d, where the number is published)
    ("Qwen/Qwen3-VL-4B-Instruct", "vision"): (
        1024, "vision_config.hidden_size in the checkpoint's config.json (24 vision blocks)"),
    ("google/gemma-3-4b-it", "vision"): (
        1152, "vision_config.hidden_size (SigLIP, 27 layers) in the checkpoint's config.json"),
    ("llava-hf/llava-1.5-13b-hf", "language"): (
        5120, "text_config.hidden_size (Llama-2-13B, 40 layers) in the checkpoint's config.json"),
}

SPARSE_DENSITY = 1 / 8  # hsae.sae.sparse.MAX_DENSITY: the sparse path runs while k/n is at most this
SPARSE_ENCODERS = ("topk", "batchtopk")
H100_FP32_PEAK = 67.0  # TFLOP/s, H100 SXM, FP32 without tensor cores (NVIDIA's H100 datasheet)
DEFAULT_TFLOPS = 30.0


@dataclass
class Level:
    n: int
    encoder: dict
    start_step: int


@dataclass
class VariantCost:
    recipe: str
    variant: str
    label: str
    method: str
    width: int
    steps: int
    batch: int
    dense: float  # FLOPs, every product dense
    sparse: float  # FLOPs, on hsae's sparse path where it applies
    precision: str


def layer_part(layer: str) -> str:
    """'vision' or 'language', from the extractor's layer path."""
    if "visual" in layer or "vision" in layer:
        return "vision"
    if "language" in layer or layer.startswith("model.layers") or layer.startswith("layers"):
        return "language"
    raise ValueError(f"cannot tell whether layer {layer!r} is in the vision or the language part")


def activation_width(recipe, source: str, width: int | None) -> int:
    if width is not None:
        return width
    if recipe.extract is None:
        raise SystemExit(f"{source}: no 'extract' section, so no model to take d from; give --width")
    extractor = recipe.extract["extractor"]
    model, layer = extractor.get("model"), extractor.get("layer", "")
    key = (model, layer_part(layer))
    if key not in ACTIVATION_WIDTHS:
        known = ", ".join(f"{m} ({p})" for m, p in ACTIVATION_WIDTHS)
        raise SystemExit(f"{source}: extract.extractor.model {model!r} ({key[1]} layer {layer!r}) is not in "
                         f"scripts/paper_cost.py's table ({known}); give its activation width with --width")
    return ACTIVATION_WIDTHS[key][0]


def annealed_budget(encoder: dict, n_inputs: int, n_latents: int, steps: int) -> np.ndarray | None:
    """k(t) per step for a TopK-style encoder (capped at n_latents), None for other encoders."""
    if encoder.get("name") not in SPARSE_ENCODERS:
        return None
    from hsae_plugins.encoders.k_anneal import KAnneal

    anneal = encoder.get("k_anneal")
    target = float(encoder["k"])
    t = np.arange(steps, dtype=np.float64)
    if anneal is None:
        return np.full(steps, min(target, n_latents))
    anneal = KAnneal.model_validate(anneal)
    span = int(anneal.fraction * steps)
    if span <= 0:
        return np.full(steps, min(target, n_latents))
    start = float(n_inputs if anneal.start == "d" else anneal.start)
    ratio = np.minimum(t, span) / span
    return np.minimum(start * (1 - ratio) + target * ratio, n_latents)


def sae_steps(rows: np.ndarray, w: int, level: Level, steps: int) -> tuple[float, float]:
    """(dense, sparse-path) FLOPs of one SAE trained on ``rows[t]`` rows of width w at steps t."""
    n = level.n
    dense_per_row = 12.0 * w * n + (4.0 * w * n if level.encoder.get("name") == "gated" else 0.0)
    dense = float(rows.sum()) * dense_per_row
    k = annealed_budget(level.encoder, w, n, steps)
    if k is None:
        return dense, dense
    k = k[steps - len(rows):]
    on_sparse = k <= SPARSE_DENSITY * n
    per_row = np.where(on_sparse, 2.0 * w * n + 12.0 * w * k, dense_per_row)
    return dense, float((rows * per_row).sum())


def variant_cost(recipe, source: str, name: str, label: str, width: int | None) -> VariantCost:
    model, train = recipe.model, recipe.train
    method = model.method if isinstance(model.method, str) else model.method["name"]
    d = activation_width(recipe, source, width)
    if len(model.levels) != 2:
        raise SystemExit(f"{source}, variant {name!r}: {len(model.levels)} levels; the paper's recipes have two")
    if method not in METHODS:
        raise SystemExit(f"{source}, variant {name!r}: no cost model for model.method {method!r}")
    levels = tuple((lv.n_latents, json.dumps(lv.encoder, sort_keys=True), lv.start_step) for lv in model.levels)
    dense, sparse = training_flops(method, d, train.steps, train.batch_size, levels)
    return VariantCost(source, name, label, method, d, train.steps, train.batch_size, dense, sparse, train.precision)


METHODS = ("flat", "p_anneal", "matryoshka", "stacked", "cascade", "hac", "spectral")


@functools.lru_cache(maxsize=None)
def training_flops(method: str, d: int, S: int, B: int, levels: tuple) -> tuple[float, float]:
    """(dense, sparse-path) FLOPs of training a two-level ``method`` for S steps of B rows of width d;
    ``levels``: (n_latents, encoder as JSON, start_step) per level."""
    first, second = (Level(n, json.loads(encoder), start) for n, encoder, start in levels)
    every_step = np.full(S, float(B))
    if method == "matryoshka":
        whole = Level(first.n + second.n, first.encoder, 0)
        dense, sparse = sae_steps(every_step, d, whole, S)
        k = annealed_budget(whole.encoder, d, whole.n, S)
        if k is not None:  # the prefixes are decoded densely even when the code is sparse
            sparse += float(np.where(k <= SPARSE_DENSITY * whole.n, 6.0 * B * d * whole.n - 8.0 * B * d * k, 0.0).sum())
        extra = 2.0 * B * d * second.n * S
        return dense + extra, sparse + extra
    dense, sparse = sae_steps(every_step, d, first, S)
    upper: tuple[float, float] = (0.0, 0.0)
    if method in ("flat", "p_anneal"):
        upper = sae_steps(every_step, d, second, S)
    elif method == "stacked":
        upper = sae_steps(np.full(S - min(second.start_step, S), float(B)), first.n, second, S)
    elif method == "cascade":
        start = min(second.start_step, S)
        k1 = annealed_budget(first.encoder, d, first.n, S)
        live = np.full(S, float(first.n)) if k1 is None else np.minimum(first.n, np.ceil(k1 * B))
        upper = sae_steps(live[start:], d, second, S)
    return dense + upper[0], sparse + upper[1]


def recipe_costs(path: Path, width: int | None = None) -> list[VariantCost]:
    """One cost per variant of the recipe at ``path`` (the recipe itself when it has no variants)."""
    from hsae.recipe.load import load_recipe, read_recipe_tree
    from hsae.run.variants import expand_variants

    source = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    tree = read_recipe_tree(path)
    if not tree.get("variants"):
        recipe = load_recipe(path)
        return [variant_cost(recipe, source, recipe.name, "CSAE", width)]
    return [variant_cost(v.recipe, source, v.name, v.label, width)
            for v in expand_variants(tree, [], source, path.parent)]


def hours(flops: float, tflops: float) -> float:
    return flops / (tflops * 1e12) / 3600


def commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip() or "unknown"


def markdown(costs: dict[str, list[VariantCost]], tflops: float, revision: str) -> str:
    precisions = sorted({c.precision for cs in costs.values() for c in cs})
    lines = [
        f"Computed by `scripts/paper_cost.py` at commit {revision}, not measured (no GPU was available).",
        f"Hours assume a sustained {tflops:g} TFLOP/s (`--tflops`): the recipes train in "
        f"{', '.join(precisions)} (`train.precision`; hsae does not turn on TF32), and {tflops:g} is "
        f"{100 * tflops / H100_FP32_PEAK:.0f} % of an H100 SXM's FP32 peak ({H100_FP32_PEAK:g} TFLOP/s). "
        "\"dense\" counts every product of a step as dense; \"sparse path\" counts what hsae's TopK/BatchTopK "
        "fast path computes (one dense projection, then the selected latents only): the arithmetic lies between "
        "the two, and the time also depends on how close to the assumed rate the kernels run (sparse ones run "
        "further below it). The level-2 rows of a cascade are counted at their bound min(n₁, ⌈k₁(t)·B⌉). "
        "Not counted: evaluation (HMS), the clustering of HAC and SC, the optimiser update, data loading, and "
        "extraction, whose cost (forward passes of the MLLM up to the hooked layer over the train and test "
        "draws) depends on the image sizes (Qwen3-VL's vision tower takes images at their own resolution) and "
        "on the draws from your copies of the datasets. The formulas: the script's docstring.",
        "",
        "| recipe | d | variants | steps × batch | training PFLOP, dense | sparse path | hours on one GPU, dense | sparse path |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for name, cs in costs.items():
        dense, sparse = sum(c.dense for c in cs), sum(c.sparse for c in cs)
        lines.append(f"| `{name}` | {cs[0].width} | {len(cs)} | {cs[0].steps:,} × {cs[0].batch:,} | "
                     f"{dense / 1e15:,.0f} | {sparse / 1e15:,.0f} | {hours(dense, tflops):,.0f} | {hours(sparse, tflops):,.0f} |")
    by_width: dict[int, dict[str, VariantCost]] = {}
    for cs in costs.values():
        for c in cs:
            by_width.setdefault(c.width, {}).setdefault(c.label, c)
    widths = sorted(by_width)
    labels = list(dict.fromkeys(c.label for cs in costs.values() for c in cs))
    lines += ["", "Hours per variant (dense / sparse path; a variant's cost depends on d, not on the dataset):", "",
              "| variant | " + " | ".join(f"d = {w}" for w in widths) + " |",
              "|---|" + "---:|" * len(widths)]
    for label in labels:
        cells = [f"{hours(by_width[w][label].dense, tflops):,.1f} / {hours(by_width[w][label].sparse, tflops):,.1f}"
                 if label in by_width[w] else "—" for w in widths]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    sources = {m: src for (m, _), (_, src) in ACTIVATION_WIDTHS.items()}
    lines += ["", "d per model (the layer the recipe extracts): " + "; ".join(
        f"{m}: {ACTIVATION_WIDTHS[(m, p)][0]} ({sources[m]})" for m, p in ACTIVATION_WIDTHS) + "."]
    return "\n".join(lines)


def all_costs(width: int | None = None) -> dict[str, list[VariantCost]]:
    paths = sorted(RECIPES.glob("*.yaml"))
    if not paths:
        raise SystemExit(f"no recipes in {RECIPES}")
    return {path.stem: recipe_costs(path, width) for path in paths}


def replace_block(text: str, block: str, where: Path) -> str:
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise SystemExit(f"{where}: needs one '{START}' line before one '{END}' line")
    head, rest = text.split(START)
    _, tail = rest.split(END)
    return f"{head}{START}\n{block}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tflops", type=float, default=DEFAULT_TFLOPS,
                        help=f"sustained TFLOP/s of the GPU (default {DEFAULT_TFLOPS:g}: about 45 %% of an H100 "
                             f"SXM's {H100_FP32_PEAK:g} TFLOP/s FP32 peak)")
    parser.add_argument("--width", type=int, default=None, help="activation width d for every recipe "
                        "(instead of the table of known models)")
    parser.add_argument("--doc", type=Path, default=DOC, help="the Markdown file with the marker comments")
    parser.add_argument("--check", action="store_true", help="exit 1 when the block differs from this tree's")
    parser.add_argument("--print", action="store_true", help="print the block instead of writing it")
    args = parser.parse_args(argv)
    if args.tflops <= 0:
        parser.error("--tflops must be positive")
    block = markdown(all_costs(args.width), args.tflops, commit())
    if args.print:
        print(block)
        return 0
    if not args.doc.is_file():
        raise SystemExit(f"{args.doc}: not found")
    text = args.doc.read_text()
    new = replace_block(text, block, args.doc)
    if args.check:
        # the commit line names the commit the block was written at, so it is not compared
        same = _without_commit(new) == _without_commit(text)
        if not same:
            print(f"{args.doc}: the paper_cost block is not what scripts/paper_cost.py gives; rerun it", file=sys.stderr)
        return 0 if same else 1
    args.doc.write_text(new)
    print(f"wrote the cost table into {args.doc}")
    return 0


def _without_commit(text: str) -> str:
    import re

    return re.sub(r"at commit \S+,", "at commit <commit>,", text)


if __name__ == "__main__":
    sys.exit(main())
