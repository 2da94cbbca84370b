"""Reading a recipe: YAML (safe_load), ``--set a.b=c`` overrides, validation with errors that
name the YAML path, the bad value and what was expected, and a check that every plugin exists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from hsae import registry
from hsae.errors import BadInput
from hsae.recipe.schema import Recipe
from hsae.store import ActivationStore


def _yaml_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(recipe)"


def _describe(exc: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid recipe"]
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-after")))
        value = "" if err["type"] in ("missing", "extra_forbidden") else f" (got {err['input']!r})"
        what = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"  {_yaml_path(loc)}: {what}{value}")
    return "\n".join(lines)


def apply_override(tree: dict, assignment: str) -> None:
    """Set ``a.b.0.c=value`` in a nested dict/list; the value is parsed as YAML."""
    if "=" not in assignment:
        raise BadInput(f"--set {assignment!r}: expected KEY=VALUE, e.g. train.lr=3e-4")
    key, raw = assignment.split("=", 1)
    if not key.strip() or any(not part for part in key.strip().split(".")):
        raise BadInput(f"--set {assignment!r}: {key.strip()!r} is not a dotted recipe key such as train.lr")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise BadInput(f"--set {assignment!r}: the value is not valid YAML ({_one_line(exc)}); "
                       "quote a string, e.g. --set name='\"a: b\"'") from None
    set_key(tree, key.strip(), value, "--set")


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def set_key(tree: dict, key: str, value: Any, where: str = "--set") -> None:
    """Set the dotted ``key`` (list items by index) of a nested dict/list to ``value``;
    ``where`` names the override in error messages."""
    parts = key.split(".")
    node: Any = tree
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise BadInput(f"{where} {key}: {'.'.join(parts[:i]) or 'recipe'} is a list of {len(node)}; "
                               f"{part!r} is not an index in it")
            part = int(part)
            if last:
                node[part] = value
            else:
                node = node[part]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise BadInput(f"{where} {key}: {'.'.join(parts[:i])} is a value ({node!r}), not a section")


def read_recipe_tree(path: Path) -> dict:
    """The recipe file as plain data."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"recipe file not found: {path}" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
                       "a recipe is a YAML file saved as UTF-8") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        tree = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as exc:
        raise BadInput(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(tree, dict):
        raise BadInput(f"{path}: a recipe is a YAML mapping of sections (data, model, train, eval); got {type(tree).__name__}")
    return tree


def parse_recipe(tree: dict, source: str = "recipe", base_dir: Path | None = None) -> Recipe:
    """Validate plain data as a Recipe; relative store paths are taken from ``base_dir``."""
    try:
        recipe = Recipe.model_validate(tree, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise BadInput(_describe(exc, source)) from None
    if base_dir is not None and recipe.data.activations is not None and not recipe.data.activations.is_absolute():
        candidate = base_dir / recipe.data.activations
        if candidate.exists() and not recipe.data.activations.exists():
            recipe.data.activations = candidate
    return recipe


def load_recipe(path: Path, overrides: list[str] | None = None) -> Recipe:
    """Read, override and validate a recipe (no plugin is checked yet: see :func:`check_recipe`)."""
    tree = read_recipe_tree(path)
    for assignment in overrides or []:
        apply_override(tree, assignment)
    return parse_recipe(tree, str(path), Path(path).parent)


def devices(recipe: Recipe) -> str:
    """Where the recipe will train (and extract) on this machine, for ``hsae validate``."""
    from hsae.interfaces.extraction.device import resolve_device

    where = [f"training on {resolve_device(recipe.train.device)} (train.device: {recipe.train.device})"]
    if recipe.extract is not None:
        spec = dict(recipe.extract["extractor"])
        _, options = registry.validate_options("hsae.extractors", spec.pop("name"), spec)
        asked = getattr(options, "device", None)
        if asked is not None:
            where.append(f"extraction on {resolve_device(asked)} (extract.extractor.device: {asked})")
    return ", ".join(where)


def check_recipe(recipe: Recipe) -> None:
    """Everything that can be checked without running: plugins exist and accept their options,
    and the store named by ``data.activations`` exists."""
    for l, level in enumerate(recipe.model.levels):
        spec = dict(level.encoder)
        name = spec.pop("name")
        try:
            cls, options = registry.validate_options("hsae.encoders", name, spec)
        except BadInput as exc:
            raise BadInput(f"model.levels[{l}].encoder: {exc}") from None
        problems = cls.size_problems(options, level.n_latents)
        if problems:
            raise BadInput(f"model.levels[{l}].encoder ({name}, n_latents {level.n_latents}): "
                           + "; ".join(problems))
    plugin_sections = [("data.dataset", "hsae.datasets", recipe.data.dataset),
                       ("eval.backbone", "hsae.backbones", recipe.eval.backbone)]
    if recipe.steer is not None:
        plugin_sections += [("steer.judge", "hsae.judges", recipe.steer.judge),
                            ("steer.labeller", "hsae.labellers", recipe.steer.labeller),
                            ("steer.images", "hsae.datasets", recipe.steer.images)]
    for where, group, spec in plugin_sections:
        if spec is not None:
            options = dict(spec)
            try:
                registry.validate_options(group, options.pop("name"), options)
            except BadInput as exc:
                raise BadInput(f"{where}: {exc}") from None
    if recipe.extract is not None:
        from hsae.extract import check_extract_config  # the extraction stage validates its own section

        check_extract_config(recipe.extract)
    if recipe.data.test_activations is not None and not Path(recipe.data.test_activations).exists():
        raise BadInput(f"data.test_activations: store not found: {recipe.data.test_activations}")
    if recipe.data.activations is not None:
        if not Path(recipe.data.activations).exists():
            raise BadInput(f"data.activations: store not found: {recipe.data.activations}")
        with ActivationStore(recipe.data.activations) as store:  # its layout and width, from the header
            if recipe.data.width is not None:
                store.check_width(recipe.data.width)
