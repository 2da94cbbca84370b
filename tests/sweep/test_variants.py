"""How a recipe's variants are resolved and checked, and what `model.method` accepts."""

from __future__ import annotations

import copy

import pytest

from sweepkit import TINY_SWEEP, hsae, write_yaml
from hsae.errors import BadInput
from hsae.recipe.load import parse_recipe
from hsae.run.variants import expand_variants


def _tree(**changes) -> dict:
    tree = copy.deepcopy(TINY_SWEEP)
    tree.update(changes)
    return tree


def test_a_variant_is_the_recipe_with_its_keys_set_then_the_command_line():
    variants = expand_variants(_tree(), ["train.steps=50", "model.levels.0.n_latents=40"], "tiny.yaml")
    assert [v.name for v in variants] == [v["name"] for v in TINY_SWEEP["variants"]]
    by_name = {v.name: v for v in variants}
    assert by_name["csae"].recipe.name == "tiny/csae" and by_name["csae"].label == "CSAE"
    assert by_name["partial"].recipe.model.stop_gradient == "partial"
    assert by_name["matryoshka"].recipe.model.levels[0].encoder == {"name": "batchtopk", "k": 4}
    # the command line wins over the variant, for every variant (even one that replaced the levels)
    assert all(v.recipe.train.steps == 50 and v.recipe.model.levels[0].n_latents == 40 for v in variants)
    assert len(by_name["csae3"].recipe.model.levels) == 3
    assert "variants" not in by_name["csae"].tree
    keys = {v.name: v.source_key for v in variants}
    assert keys["csae"] == keys["hac"] != keys["csae3"] == keys["flat3"]


@pytest.mark.parametrize("variants, message", [
    ([{"name": "a"}, {"name": "a"}], "repeated: a"),
    ([{"name": "a b"}], "name"),
    ([{"name": "a", "set": {"variants": []}}], "cannot set 'variants'"),
    ([{"name": "a", "set": {"model.levels.5.n_latents": 3}}], "is a list of 2"),
    ([{"name": "a", "set": {"model.method": "kmeans"}}], "unknown method 'kmeans'"),
])
def test_bad_variants_are_refused_with_the_reason(variants, message):
    with pytest.raises(BadInput, match=message):
        expand_variants(_tree(variants=variants), [], "tiny.yaml")


@pytest.mark.parametrize("model, message", [
    ({"method": "hac", "levels": TINY_SWEEP["model"]["levels"][:1]}, "at least two levels"),
    ({"method": "flat", "stop_gradient": "partial", "levels": TINY_SWEEP["model"]["levels"]}, "belong to the cascade"),
    ({"method": {"name": "cascade", "k": 2}, "levels": TINY_SWEEP["model"]["levels"]}, "takes no options"),
    ({"method": {"name": "hac", "linkage": "ward"}, "levels": TINY_SWEEP["model"]["levels"]}, "linkage"),
    ({"method": {"linkage": "average"}, "levels": TINY_SWEEP["model"]["levels"]}, "needs a 'name'"),
])
def test_method_sections_that_cannot_be_built_are_refused(model, message):
    tree = _tree(model=model)
    del tree["variants"]
    with pytest.raises(BadInput, match=message):
        parse_recipe(tree, "recipe.yaml")


def test_validate_lists_the_variants_and_their_methods(tmp_path):
    code, output = hsae("validate", write_yaml(tmp_path / "tiny.yaml", _tree()))
    assert code == 0, output
    assert "10 variants" in output and "hac (hac)" in output and "p_anneal (p_anneal)" in output
    code, output = hsae("validate", write_yaml(tmp_path / "bad.yaml", _tree(variants=[{"name": "stores"}])))
    assert code == 2 and "cannot be named 'stores'" in output
