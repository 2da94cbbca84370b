"""Plugins found through entry points (read with the ``entrypoints`` package).

Nothing is imported until a plugin is asked for by name. The core names no plugin: it asks
the registry for ``(group, name)`` and speaks to what comes back through the interfaces in
``hsae.interfaces``.
"""

from __future__ import annotations

import importlib.metadata
import sys
from dataclasses import dataclass
from typing import Any, Mapping

import entrypoints
from pydantic import ValidationError

from hsae.errors import PluginError
from hsae.interfaces.plugin import Plugin, describe

GROUPS = ("hsae.encoders", "hsae.extractors", "hsae.datasets", "hsae.backbones", "hsae.judges", "hsae.labellers")


@dataclass(frozen=True)
class PluginInfo:
    group: str
    name: str
    distribution: str
    description: str
    error: str | None = None


def _group(group: str) -> dict[str, entrypoints.EntryPoint]:
    if group not in GROUPS:
        raise PluginError(f"unknown plugin group {group!r}; the groups are: {', '.join(GROUPS)}")
    found: dict[str, entrypoints.EntryPoint] = {}
    for ep in entrypoints.get_group_all(group, path=sys.path):
        found.setdefault(ep.name, ep)  # first on sys.path wins, as with imports
    return found


def _distribution(ep: entrypoints.EntryPoint) -> str:
    """'name version' of the distribution that declares ``ep``."""
    distro = ep.distro
    if distro is None:
        return "?"
    version = distro.version
    if version is None:
        try:
            version = importlib.metadata.version(distro.name)
        except importlib.metadata.PackageNotFoundError:
            return distro.name
    return f"{distro.name} {version}"


def names(group: str) -> list[str]:
    """Names declared in ``group``, without importing anything."""
    return sorted(_group(group))


def load(group: str, name: str) -> type[Plugin]:
    """Import and return the plugin class registered as ``name`` in ``group``."""
    found = _group(group)
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise PluginError(f"no plugin named {name!r} in group {group!r}; available: {known}")
    ep = found[name]
    try:
        cls = ep.load()
    except Exception as exc:  # a broken third-party plugin must not take the others down
        raise PluginError(
            f"plugin {name!r} in group {group!r} (from {_distribution(ep)}, "
            f"{ep.module_name}:{ep.object_name}) failed to import: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Plugin)):
        raise PluginError(
            f"plugin {name!r} in group {group!r} ({ep.module_name}:{ep.object_name}) "
            "is not a subclass of hsae.interfaces.plugin.Plugin"
        )
    return cls


def _option_problem(err: dict) -> str:
    """One pydantic error as 'field: message (got value)'; a check of the options as a whole
    (no field) as its message alone."""
    if not err["loc"]:
        return err["msg"].removeprefix("Value error, ")
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" + (f" (got {err['input']!r})" if err["type"] != "extra_forbidden" else "")


def validate_options(group: str, name: str, options: Mapping[str, Any]):
    """Check ``options`` against the plugin's typed ``Config``; errors name plugin and field."""
    cls = load(group, name)
    try:
        return cls, cls.Config(**dict(options))
    except ValidationError as exc:
        problems = "; ".join(_option_problem(err) for err in exc.errors())
        raise PluginError(f"{group} plugin {name!r}: invalid options: {problems}") from None


def create(group: str, spec: Mapping[str, Any] | str, **build_args: Any) -> Any:
    """Build a plugin from ``{"name": ..., <options>}`` (or a bare name).

    ``build_args`` are passed to the constructor after the config (e.g. an encoder's sizes).
    """
    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    if "name" not in spec:
        raise PluginError(f"a {group} plugin spec needs a 'name' key; got keys {sorted(spec)}")
    name = spec.pop("name")
    cls, config = validate_options(group, name, spec)
    plugin = cls(config, **build_args)
    plugin.plugin_name = name
    return plugin


def catalogue() -> list[PluginInfo]:
    """Every plugin of every group, imported to read its description; failures reported."""
    rows = []
    for group in GROUPS:
        for name, ep in sorted(_group(group).items()):
            try:
                rows.append(PluginInfo(group, name, _distribution(ep), describe(load(group, name))))
            except PluginError as exc:
                rows.append(PluginInfo(group, name, _distribution(ep), "", str(exc)))
    return rows
