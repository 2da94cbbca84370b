"""scripts/paper_cost.py: its FLOP count against a count by hand, and docs/paper.md's cost block
being what the script gives at this tree."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def paper_cost(load_script):
    return load_script("paper_cost")


def test_flat_batchtopk_matches_a_count_by_hand(paper_cost):
    costs = {c.variant: c for c in paper_cost.recipe_costs(ROOT / "recipes" / "paper" / "qwen3vl-imagenet-table1.yaml")}
    flat = costs["batchtopk"]
    S, B, d, n1, n2 = 488_281, 1024, 1024, 20_000, 10_000
    assert (flat.steps, flat.batch, flat.width) == (S, B, d)
    # every product dense: 12 FLOPs per weight (d·n of the encoder and of the decoder, /2) and row
    assert flat.dense == pytest.approx(12 * S * B * d * (n1 + n2), rel=1e-12)
    # sparse path: level 1 anneals k from d to 6 over the first 10 % of the steps, level 2 keeps k = 6
    span = int(0.1 * S)
    k1_sum = sum(d - (d - 6) * t / span for t in range(span)) + 6 * (S - span)
    by_hand = S * B * 2 * d * n1 + 12 * B * d * k1_sum + S * B * (2 * d * n2 + 12 * d * 6)
    assert flat.sparse == pytest.approx(by_hand, rel=1e-9)


def test_cascade_counts_the_live_atoms_from_level_two_start(paper_cost):
    csae = {c.variant: c for c in paper_cost.recipe_costs(ROOT / "recipes" / "paper" / "qwen3vl-imagenet-table1.yaml")}["csae"]
    S, B, d, n1, n2, start = 488_281, 1024, 1024, 20_000, 10_000, 10_000
    span = int(0.1 * S)
    live = sum(min(n1, math.ceil((d - (d - 6) * min(t, span) / span) * B)) for t in range(start, S))
    assert csae.dense == pytest.approx(12 * S * B * d * n1 + 12 * live * d * n2, rel=1e-9)


def test_unknown_model_is_refused_by_name(paper_cost, tmp_path):
    recipe = tmp_path / "other.yaml"
    recipe.write_text((ROOT / "recipes" / "paper" / "qwen3vl-coco-table4.yaml").read_text()
                      .replace("Qwen/Qwen3-VL-4B-Instruct", "someone/other-model"))
    with pytest.raises(SystemExit, match="someone/other-model.*--width"):
        paper_cost.recipe_costs(recipe)
    assert paper_cost.recipe_costs(recipe, width=64)[0].width == 64


def test_docs_block_is_what_the_script_gives(paper_cost):
    assert paper_cost.main(["--check"]) == 0, "docs/paper.md's cost block is stale: run scripts/paper_cost.py"
