"""Held-out check of deeper hierarchies: `recipes/quickstart.yaml` as a user adapts it, on planted
stores of depth 2, 3 and 4 made by a generator of this script's own (not the synthetic_hierarchy
plugin's), for several seeds and stop-gradient modes; writes a Markdown table naming the commit.

    .venv/bin/python scripts/depth_check.py --out runs/depth_check --markdown docs/depth_check.md

(48 runs, 24 per generator, below.)

    .venv/bin/python scripts/depth_check.py --atoms-only --seeds $(seq 0 39) --compare-z 2 3 3.5 4 --markdown docs/settle_check.md

checks the settle rule alone (hsae.cascade.settle, the recipe defaults), without training, on
many more trees: the level-1 atoms are the planted leaves, each turned by a small random angle
(cosine 0.98), and the upper levels are settled bottom-up as the cascade does (a few minutes).
Beside the rule, an *oracle* is scored on the same atoms: at each level it is given the true
groups of the level below and the true number of concepts, and cuts the average linkage of the
groups' means there (refined by spherical k-means, as the rule's first two steps). Where the
oracle holds and the rule does not, the rule's choice of the count or the membership is at fault;
where the oracle fails too, average linkage of the atoms cannot tell the planted families apart.

The adaptation is the one a user makes: the store and the widths change (2.5x the planted
concepts of each level, or ``--width-factor``), and a deeper tree repeats the last level's entry
unchanged.

The generator: roots are random unit vectors in R^d; each concept has 2-6 children (2-5 at depth
4, drawn per concept), a child being the normalised ``s * parent + sqrt(1 - s^2) * g`` with ``g``
a random unit vector (not orthogonalised) and ``s`` drawn in [0.55, 0.85] once per level, or
(``--generators per-concept``) once per parent concept, shared by its children. A row
switches on 1 + Poisson(2) leaves drawn by Zipf(1.1) frequencies, with magnitudes 0.3 + Exp(1),
plus Gaussian noise of standard deviation 0.05 per coordinate.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "recipes" / "quickstart.yaml"
ROOTS = {2: 20, 3: 6, 4: 3}
BRANCHING = {2: (2, 6), 3: (2, 6), 4: (2, 5)}
WIDTH_FACTOR = 2.5
SIMILARITY = (0.55, 0.85)  # child-parent similarity, drawn per level
ATOMS_ONLY_BRANCHING = (1, 8)
ATOM_COSINE = 0.98


def planted_tree(rng: np.random.Generator, depth: int, dim: int, branching: tuple[int, int] | None = None,
                 per_concept: bool = False) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Directions per level (leaves first), parents per level, and the per-level similarities
    (``per_concept``: each parent draws its own s in SIMILARITY instead, shared by its children)."""
    similarity = rng.uniform(*SIMILARITY, depth - 1)
    directions = [rng.standard_normal((ROOTS[depth], dim))]
    directions[0] /= np.linalg.norm(directions[0], axis=1, keepdims=True)
    parents: list[np.ndarray] = []
    low, high = branching or BRANCHING[depth]
    for level in range(depth - 1, 0, -1):
        above, s = directions[0], similarity[level - 1]
        parent = np.repeat(np.arange(len(above)), rng.integers(low, high + 1, len(above)))
        noise = rng.standard_normal((len(parent), dim))
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        if per_concept:
            s = rng.uniform(*SIMILARITY, len(above))[parent][:, None]
        child = s * above[parent] + np.sqrt(1 - s * s) * noise
        directions.insert(0, child / np.linalg.norm(child, axis=1, keepdims=True))
        parents.insert(0, parent)
    return directions, parents, similarity


def planted_rows(rng: np.random.Generator, leaves: np.ndarray, n_rows: int) -> np.ndarray:
    n_leaves = len(leaves)
    frequency = 1.0 / np.arange(1, n_leaves + 1) ** 1.1
    frequency = frequency[rng.permutation(n_leaves)] / frequency.sum()
    counts = np.minimum(1 + rng.poisson(2.0, n_rows), n_leaves)
    rows = np.zeros((n_rows, leaves.shape[1]))
    for r, count in enumerate(counts):
        chosen = rng.choice(n_leaves, size=count, replace=False, p=frequency)
        rows[r] = (0.3 + rng.exponential(1.0, count)) @ leaves[chosen]
    return (rows + 0.05 * rng.standard_normal(rows.shape)).astype(np.float32)


def write_store(path: Path, depth: int, seed: int, dim: int, n_rows: int,
                per_concept: bool = False) -> tuple[list[int], list[float] | str]:
    from hsae.store.truth import Truth, write_truth
    from hsae.store import StoreWriter

    rng = np.random.default_rng([depth, seed, 14])
    directions, parents, similarity = planted_tree(rng, depth, dim, per_concept=per_concept)
    if not path.exists():
        with StoreWriter(path, width=dim) as writer:
            writer.append(planted_rows(rng, directions[0], n_rows))
            writer.commit()
            write_truth(writer, Truth(tuple(directions), tuple(parents)))
    return [len(d) for d in directions], ("per concept" if per_concept else [round(float(s), 2) for s in similarity])


def adapted_recipe(store: Path, sizes: list[int], stop_gradient: str) -> dict:
    """quickstart.yaml with the store, the widths and (deeper trees) the last level repeated."""
    recipe = yaml.safe_load(QUICKSTART.read_text())
    recipe["name"] = "depth_check"
    recipe["data"] = {"activations": str(store)}
    recipe["eval"] = {}  # the store has no embeddings: no HMS
    levels = recipe["model"]["levels"]
    while len(levels) < len(sizes):
        levels.append(copy.deepcopy(levels[-1]))
    for level, size in zip(levels, sizes):
        level["n_latents"] = int(round(WIDTH_FACTOR * size))
    recipe["model"]["stop_gradient"] = stop_gradient
    return recipe


def store_name(depth: int, seed: int, per_concept: bool) -> str:
    return f"store_depth{depth}_seed{seed}{'_per_concept' if per_concept else ''}.h5"


def run_case(out: Path, depth: int, seed: int, stop_gradient: str, per_concept: bool, dim: int, n_rows: int) -> dict:
    store = out / store_name(depth, seed, per_concept)
    sizes, similarity = write_store(store, depth, seed, dim, n_rows, per_concept)
    name = f"depth{depth}_seed{seed}{'_per_concept' if per_concept else ''}_{stop_gradient}"
    recipe_path = out / f"{name}.yaml"
    recipe_path.write_text(yaml.safe_dump(adapted_recipe(store, sizes, stop_gradient)))
    hsae = Path(sys.executable).with_name("hsae")
    subprocess.run([str(hsae), "run", str(recipe_path), "--out", str(out / name), "--fresh"], check=True,
                   capture_output=True)
    recovery = json.loads((out / name / "metrics.json").read_text())["recovery"]
    return {"depth": depth, "seed": seed, "stop_gradient": stop_gradient, "sizes": sizes,
            "similarity": similarity, "leaf_recovery": recovery["leaf_recovery"],
            "levels": [{"level": lv["level"], "f1": lv["f1"], "found": lv["n_learned_used"], "true": lv["n_true"]}
                       for lv in recovery["levels"]]}


def atoms_only_case(depth: int, seed: int, dim: int, z: float | None = None, per_concept: bool = False) -> dict:
    """The settle rule on the planted leaves turned by a small random angle (no training), with
    the recipe defaults (``z``: another ``settle_z``; ``per_concept``: planted_tree's)."""
    from hsae.cascade.config import LevelConfig
    from hsae.cascade.settle import settle_bottom_up
    from hsae.metrics.recovery import level_agreement
    from hsae.store.truth import Truth

    rng = np.random.default_rng([depth, seed, 15])
    directions, parents, similarity = planted_tree(rng, depth, dim, ATOMS_ONLY_BRANCHING, per_concept)
    leaves = directions[0]
    turn = rng.standard_normal(leaves.shape)
    turn -= (turn * leaves).sum(1, keepdims=True) * leaves
    turn /= np.linalg.norm(turn, axis=1, keepdims=True)
    atoms = ATOM_COSINE * leaves + np.sqrt(1 - ATOM_COSINE**2) * turn
    truth = Truth(tuple(directions), tuple(parents))
    widths = [int(round(WIDTH_FACTOR * len(d))) for d in directions[1:]]
    defaults = {name: LevelConfig.model_fields[f"settle_{name}"].default for name in ("ratio", "z", "cousins")}
    z = defaults["z"] if z is None else z
    found = settle_bottom_up(atoms, widths, defaults["ratio"], z, defaults["cousins"])
    levels = [level_agreement(level, truth.ancestors(level), labels, len(directions[level - 1]))
              for level, labels in enumerate(found, start=2)]
    return {"depth": depth, "seed": seed,
            "similarity": "per concept" if per_concept else [round(float(v), 2) for v in similarity],
            "leaf_recovery": 1.0,  # one atom per leaf at cosine ATOM_COSINE, above the 0.9 matching threshold
            "levels": [{"level": lv.level, "f1": lv.f1, "found": lv.n_learned_used, "true": lv.n_true}
                       for lv in levels],
            "oracle": oracle_f1(atoms, truth)}


def oracle_f1(atoms: np.ndarray, truth) -> list[float]:
    """Per upper level, the F1 of the oracle (module docstring): the true groups of the level
    below, their means cut by average linkage into the true count and refined."""
    from hsae.cascade.settle import group_means, linkage_clusters
    from hsae.metrics.recovery import level_agreement

    scores = []
    for level in range(2, truth.depth + 1):
        below = truth.ancestors(level - 1) if level > 2 else np.arange(len(atoms))
        count = len(truth.directions[level - 1])
        labels = linkage_clusters(group_means(atoms, below), count)[below]
        scores.append(level_agreement(level, truth.ancestors(level), labels, count).f1)
    return scores


def oracle_holds(result: dict) -> bool:
    return all(f1 >= 0.9 for f1 in result["oracle"])


GENERATORS = {"per-level": False, "per-concept": True}
"""The two generators (``--generators``): one s per level, or one per parent concept."""


def atoms_only_markdown(by_generator: dict[str, dict[float, list[dict]]], default: float, commit: str,
                        dim: int) -> str:
    """The page: per generator, the trees with the default ``settle_z`` in detail; the other values counted."""
    n_trees = len(next(iter(by_generator.values()))[default])
    lines = [
        "# The settle rule alone, on many planted trees",
        "",
        f"Generated by `scripts/depth_check.py --atoms-only` at commit {commit}: {n_trees} planted trees in R^{dim}",
        f"per generator ({ATOMS_ONLY_BRANCHING[0]}-{ATOMS_ONLY_BRANCHING[1]} children per concept, child-parent "
        f"similarity s in [{SIMILARITY[0]}, {SIMILARITY[1]}]),",
        " no training: the level-1 atoms are the leaves turned by a random",
        f"angle (cosine {ATOM_COSINE}), and the upper levels are settled bottom-up with the recipe defaults, widths",
        f"{WIDTH_FACTOR}× the truth. A level *holds* with F1 ≥ 0.9 and its concept count within 25 %; a tree holds when",
        "every upper level does. Two generators: s drawn once per level (the generator of docs/depth_check.md),",
        "and s drawn per parent concept, so that families of one level differ in cohesion.",
        "",
        "The *oracle* is told, at each level, the true groups of the level below and the true number of",
        "concepts, and cuts the average linkage of the groups' means there (refined as the rule's first",
        "clustering is). Where it holds (every upper level F1 ≥ 0.9) and the rule does not, the rule's",
        "choice of the count or of the members is at fault; where it fails too, average linkage of the atoms",
        "does not tell those planted families apart. The per-concept trees mix loose and tight families,",
        "which one cut of one linkage tree fits badly: there the rule, which decides pair by pair, beats it.",
    ]
    for generator, by_z in by_generator.items():
        lines += ["", f"## Similarity drawn {generator.replace('-', ' ')}", ""] + _atoms_only_section(by_z, default)
    return "\n".join(lines + [""])


def _atoms_only_section(by_z: dict[float, list[dict]], default: float) -> list[str]:
    results = by_z[default]
    lines = [
        "| depth | trees | trees that hold | oracle holds | oracle holds, rule not | "
        "level: holds (median F1, median found/planted) |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    depths = sorted({r["depth"] for r in results})
    for depth in depths:
        rows = [r for r in results if r["depth"] == depth]
        per_level = []
        for index, level in enumerate(rows[0]["levels"]):
            scores = [r["levels"][index] for r in rows]
            held = sum(level_holds(lv) for lv in scores)
            per_level.append(f"L{level['level']}: {held}/{len(rows)} ({np.median([lv['f1'] for lv in scores]):.3f}, "
                             f"{np.median([lv['found'] / lv['true'] for lv in scores]):.2f})")
        lines.append(f"| {depth} | {len(rows)} | {sum(map(holds, rows))} | {sum(map(oracle_holds, rows))} | "
                     f"{sum(oracle_holds(r) and not holds(r) for r in rows)} | {'; '.join(per_level)} |")
    if len(by_z) > 1:
        lines += ["", "Trees that hold with other values of `settle_z` (the same trees; the default above):", "",
                  "| settle_z | " + " | ".join(f"depth {d}" for d in depths) + " | all |",
                  "|---:|" + "---:|" * (len(depths) + 1)]
        for z, runs in sorted(by_z.items()):
            counts = [sum(holds(r) for r in runs if r["depth"] == d) for d in depths]
            lines.append(f"| {z:g}{' (default)' if z == default else ''} | " + " | ".join(map(str, counts))
                         + f" | {sum(counts)} of {len(runs)} |")
    failing = [r for r in results if not holds(r)]
    lines += ["", "Trees that do not hold, with the similarity per level (bottom-up) where it is one per level, and",
              "the oracle's F1 per level:", ""]
    lines += [f"- depth {r['depth']} seed {r['seed']}, s = {r['similarity']}: "
              + ", ".join(f"L{lv['level']} {lv['f1']:.2f} ({lv['found']}/{lv['true']})" for lv in r["levels"])
              + "; oracle " + ", ".join(f"{f1:.2f}" for f1 in r["oracle"])
              for r in failing]
    return lines


def level_holds(level: dict) -> bool:
    return level["f1"] >= 0.9 and abs(level["found"] - level["true"]) <= 0.25 * level["true"]


def holds(result: dict) -> bool:
    """The issue's bar: leaves ≥ 0.95; every upper level F1 ≥ 0.9 and concepts within 25 %."""
    return result["leaf_recovery"] >= 0.95 and all(map(level_holds, result["levels"]))


def markdown(by_generator: dict[str, list[dict]], commit: str, dim: int, n_rows: int) -> str:
    """The page: one table per generator, every run in it."""
    lines = [
        "# Deeper hierarchies, held out",
        "",
        f"Generated by `scripts/depth_check.py` at commit {commit} (planted stores in R^{dim}, {n_rows:,} rows;",
        f"widths {WIDTH_FACTOR}× the planted concepts of each level; `recipes/quickstart.yaml` otherwise",
        "unchanged, the last level's entry repeated for deeper trees). \"found/planted\": distinct learned",
        "ancestors of the leaves' atoms against the planted concepts; \"holds\": leaves ≥ 0.95 and, at every",
        "upper level, F1 ≥ 0.9 with the count within 25 %. The child-parent similarity s is drawn once per",
        "level, or per parent concept (then families of one level differ in cohesion).",
    ]
    for generator, results in by_generator.items():
        lines += ["", f"## Similarity drawn {generator.replace('-', ' ')}", "",
                  "| depth | seed | stop_gradient | similarity s per level | leaves | upper levels: F1 (found/planted) | holds |",
                  "|---:|---:|---|---|---:|---|---|"]
        for r in results:
            levels = ", ".join(f"L{lv['level']} {lv['f1']:.3f} ({lv['found']}/{lv['true']})" for lv in r["levels"])
            lines.append(f"| {r['depth']} | {r['seed']} | {r['stop_gradient']} | {r['similarity']} | "
                         f"{r['leaf_recovery']:.3f} | {levels} | {'yes' if holds(r) else 'no'} |")
        lines += ["", f"{sum(map(holds, results))} of {len(results)} runs hold.", ""]
    return "\n".join(lines)


def main() -> None:
    global WIDTH_FACTOR  # --width-factor: read by the recipe, the atoms-only case and the pages
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "depth_check")
    parser.add_argument("--markdown", type=Path, default=None, help="write the table here too")
    parser.add_argument("--depths", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--stop-gradients", nargs="+", default=["bilateral", "none"])
    parser.add_argument("--dim", type=int, default=192)
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--width-factor", type=float, default=WIDTH_FACTOR,
                        help="every level's width, as a multiple of its planted concepts")
    parser.add_argument("--generators", nargs="+", choices=list(GENERATORS), default=list(GENERATORS),
                        help="draw s once per level and/or per parent concept")
    parser.add_argument("--atoms-only", action="store_true", help="the settle rule alone, without training")
    parser.add_argument("--compare-z", type=float, nargs="*", default=[],
                        help="with --atoms-only: also count the trees that hold with these settle_z")
    args = parser.parse_args()
    WIDTH_FACTOR = args.width_factor
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    if args.atoms_only:
        from hsae.cascade.config import LevelConfig

        default = LevelConfig.model_fields["settle_z"].default
        by_generator = {name: {z: [atoms_only_case(d, s, args.dim, z, per_concept)
                                   for d in args.depths for s in args.seeds]
                               for z in {default, *args.compare_z}}
                        for name, per_concept in GENERATORS.items() if name in args.generators}
        write(atoms_only_markdown(by_generator, default, commit, args.dim), args.markdown)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    cases = [(d, s, g, GENERATORS[name]) for name in args.generators for d in args.depths for s in args.seeds
             for g in args.stop_gradients]
    for depth, seed, _, per_concept in cases:  # stores first, so no two runs write one
        write_store(args.out / store_name(depth, seed, per_concept), depth, seed, args.dim, args.rows, per_concept)
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda c: run_case(args.out, *c, args.dim, args.rows), cases))
    by_generator = {name: [r for r, c in zip(results, cases) if c[3] == GENERATORS[name]] for name in args.generators}
    write(markdown(by_generator, commit, args.dim, args.rows), args.markdown)


def write(text: str, path: Path | None) -> None:
    print(text)
    if path is not None:
        path.write_text(text)


if __name__ == "__main__":
    main()
