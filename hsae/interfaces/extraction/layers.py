"""Resolve a layer name (a full module path or a short form) to a module of a loaded model.

Module paths move between transformers versions (e.g. ``vision_tower.vision_model.encoder``
became ``vision_tower.encoder`` in 5.6, and ``language_model.model.layers`` became
``model.language_model.layers`` in 4.52), and the paper names layers relative to an inner
model (``visual.blocks.23``). So a name is read as a *kind* (vision or language) and an
index, and each family lists the module-path templates of that kind, tried in order.

Short forms, with or without a leading ``model.``:
``vision.N``, ``visual.blocks.N``, ``vision_tower.encoder.layers.N``,
``vision_tower.vision_model.encoder.layers.N`` (kind ``vision``);
``language.N``, ``language_model.layers.N``, ``language_model.model.layers.N`` (kind ``language``).
A path that exists on the model as written is always used as is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from torch import nn

from hsae.errors import BadInput

LayerKind = Literal["vision", "language"]

_SHORT_FORMS: dict[str, re.Pattern[str]] = {
    "vision": re.compile(
        r"^(?:model\.)?(?:vision|visual\.blocks|vision_tower(?:\.vision_model)?\.encoder\.layers)\.(\d+)$"
    ),
    "language": re.compile(r"^(?:model\.)?(?:language|language_model(?:\.model)?\.layers)\.(\d+)$"),
}


@dataclass(frozen=True)
class ResolvedLayer:
    """The module to hook, its full path, and its kind and index when the name gave them."""

    path: str
    module: nn.Module
    kind: LayerKind | None = None
    index: int | None = None


def parse_short_form(name: str) -> tuple[LayerKind, int] | None:
    """``(kind, index)`` when ``name`` is one of the short forms, else None."""
    for kind, pattern in _SHORT_FORMS.items():
        match = pattern.match(name)
        if match:
            return kind, int(match.group(1))  # type: ignore[return-value]
    return None


def _submodule(model: nn.Module, path: str) -> nn.Module | None:
    try:
        return model.get_submodule(path)
    except AttributeError:
        return None


def _layer_count(model: nn.Module, template: str) -> int | None:
    """How many layers the container of ``template`` holds, when it exists."""
    container = _submodule(model, template.rsplit(".", 1)[0])
    return len(container) if isinstance(container, (nn.ModuleList, nn.Sequential)) else None


def resolve_layer(
    model: nn.Module, name: str, templates: Mapping[str, Sequence[str]], *, where: str = "the model"
) -> ResolvedLayer:
    """Find the module ``name`` refers to; ``templates[kind]`` are paths with ``{i}``.

    Raises BadInput naming the paths tried, and the layer count when the index is too large.
    """
    parsed = parse_short_form(name)
    module = _submodule(model, name)
    if module is not None:
        kind, index = parsed if parsed else (None, None)
        return ResolvedLayer(name, module, kind, index)
    if parsed is None:
        raise BadInput(
            f"layer {name!r} is not a module of {where} and not a short form "
            "(vision.N, visual.blocks.N, vision_tower.encoder.layers.N, language.N, language_model.layers.N)"
        )
    kind, index = parsed
    candidates = [template.format(i=index) for template in templates.get(kind, ())]
    if not candidates:
        raise BadInput(f"layer {name!r}: {where} has no {kind} layers this extractor knows of")
    for path in candidates:
        module = _submodule(model, path)
        if module is not None:
            return ResolvedLayer(path, module, kind, index)
    counts = [n for n in (_layer_count(model, t) for t in templates[kind]) if n is not None]
    if counts:
        raise BadInput(
            f"layer {name!r}: {where} has {counts[0]} {kind} layers (indices 0..{counts[0] - 1}), "
            f"so index {index} does not exist"
        )
    raise BadInput(f"layer {name!r}: none of these modules exists in {where}: {', '.join(candidates)}")
