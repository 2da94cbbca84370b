"""A sweep: a recipe with ``variants:`` stands for one recipe per variant (docs/recipes.md).

Variant ``v`` of a recipe is the recipe without its ``variants``, with ``v.set`` applied key by
key, then the command line's ``--set`` overrides (they apply to every variant, and win), and
with ``name`` ``<recipe name>/<v.name>``. Variants whose activation source (``data.dataset``,
``data.activations``, ``extract``) is the same share one store.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

from hsae.errors import BadInput
from hsae.recipe.load import apply_override, parse_recipe, set_key
from hsae.recipe.schema import Recipe


@dataclass
class VariantRecipe:
    name: str
    label: str
    recipe: Recipe
    tree: dict

    @property
    def source_key(self) -> str:
        """What decides the activations: runs with equal keys read one store."""
        return source_key(self.tree)


def source_key(tree: dict) -> str:
    data = tree.get("data") or {}
    return json.dumps({"dataset": data.get("dataset"), "activations": data.get("activations"),
                       "test_activations": data.get("test_activations"), "extract": tree.get("extract")},
                      sort_keys=True, default=str)


def expand_variants(tree: dict, overrides: list[str], source: str, base_dir: Path | None = None) -> list[VariantRecipe]:
    """One validated recipe per variant of ``tree`` (a recipe file's content, before ``--set``)."""
    # Two copies: YAML anchors may share objects between the recipe and its variants.
    base = copy.deepcopy({key: value for key, value in tree.items() if key != "variants"})
    variants = copy.deepcopy(tree.get("variants") or [])
    for assignment in overrides:
        apply_override(base, assignment)
    parse_recipe({**base, "variants": variants}, source, base_dir)  # the variants list itself is well-formed
    out = []
    for variant in variants:
        name = variant["name"]
        where = f"{source}, variant {name!r}"
        resolved = copy.deepcopy(base)
        for key, value in (variant.get("set") or {}).items():
            if key.split(".")[0] == "variants":
                raise BadInput(f"{where}: a variant cannot set 'variants'")
            set_key(resolved, key, copy.deepcopy(value), f"{where}: set")
        for assignment in overrides:
            apply_override(resolved, assignment)
        resolved["name"] = f"{base.get('name', 'run')}/{name}"
        out.append(VariantRecipe(name, variant.get("label") or name, parse_recipe(resolved, where, base_dir), resolved))
    return out
