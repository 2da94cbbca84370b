"""The difference between two recipes as lines ``key: old → new`` (dotted keys, list items by
index), shown when a run directory is resumed with a recipe other than its own."""

from __future__ import annotations

from typing import Any

MISSING = object()


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict) and tree:
        out = {}
        for key, value in tree.items():
            out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(tree, list) and tree:
        out = {}
        for i, value in enumerate(tree):
            out.update(_flat(value, f"{prefix}.{i}" if prefix else str(i)))
        return out
    return {prefix or "(recipe)": tree}


def _show(value: Any) -> str:
    return "(absent)" if value is MISSING else repr(value)


def recipe_difference(old: dict, new: dict) -> list[str]:
    """One line per leaf key whose value differs, in the order the keys first appear."""
    before, after = _flat(old), _flat(new)
    keys = list(before) + [key for key in after if key not in before]
    return [f"{key}: {_show(before.get(key, MISSING))} → {_show(after.get(key, MISSING))}"
            for key in keys if before.get(key, MISSING) != after.get(key, MISSING)]
