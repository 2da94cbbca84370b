"""Plugins found through entry points (read with the ``entrypoints`` package), or registered in
this process with :func:`register` (a notebook, a test).

Nothing is imported until a plugin is asked for by name. The core names no plugin: it asks
the registry for ``(group, name)`` and speaks to what comes back through the interfaces in
``hsae.interfaces``. The groups are data (:data:`GROUPS`): each has a contract version, and a
plugin class that states the version it was written for (``contract = N``) is refused when it
differs. A name that two distributions declare in one group for different objects is an error
naming both.
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

GROUPS: dict[str, int] = {
    "hsae.encoders": 1,  # hsae/interfaces/encoder.py (and sparse.py)
    "hsae.extractors": 1,  # hsae/interfaces/extractor.py (and extraction/)
    "hsae.datasets": 1,  # hsae/interfaces/dataset.py
    "hsae.backbones": 1,  # hsae/interfaces/backbone.py
    "hsae.judges": 1,  # hsae/interfaces/judge.py
    "hsae.labellers": 1,  # hsae/interfaces/labeller.py
    "hsae.methods": 1,  # hsae/interfaces/method.py
}
"""Every plugin group and the version of its contract; bump a version when plugins written for
the old contract would break."""

REGISTERED = "registered in this process"


@dataclass(frozen=True)
class PluginInfo:
    group: str
    name: str
    distribution: str
    description: str
    error: str | None = None


@dataclass(frozen=True)
class _Declaration:
    """Where a name comes from: an entry point, or a class given to :func:`register`."""

    distribution: str
    target: str
    entry_point: entrypoints.EntryPoint | None = None
    obj: Any = None

    def load(self) -> Any:
        return self.obj if self.entry_point is None else self.entry_point.load()


_registered: dict[str, dict[str, Any]] = {}


def _check_group(group: str) -> None:
    if group not in GROUPS:
        raise PluginError(f"unknown plugin group {group!r}; the groups are: {', '.join(GROUPS)}")


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


def _declarations(group: str) -> dict[str, list[_Declaration]]:
    """Every declaration of every name in ``group``, one per target: two distributions that
    point a name at the same ``module:object`` agree (the first on sys.path is named)."""
    _check_group(group)
    found: dict[str, list[_Declaration]] = {}
    for ep in entrypoints.get_group_all(group, path=sys.path):
        target = f"{ep.module_name}:{ep.object_name}"
        if all(d.target != target for d in found.get(ep.name, [])):
            found.setdefault(ep.name, []).append(_Declaration(_distribution(ep), target, entry_point=ep))
    for name, obj in _registered.get(group, {}).items():
        found.setdefault(name, []).append(_Declaration(REGISTERED, f"{obj.__module__}:{obj.__qualname__}", obj=obj))
    return found


def _one(group: str, name: str, declarations: list[_Declaration]) -> _Declaration:
    if len(declarations) > 1:
        both = " and ".join(f"{d.distribution} ({d.target})" for d in declarations)
        raise PluginError(f"plugin name {name!r} in group {group!r} is declared by {both}; "
                          "uninstall one of them, or rename one entry point")
    return declarations[0]


def names(group: str) -> list[str]:
    """Names declared in ``group``, without importing anything."""
    return sorted(_declarations(group))


def _check_class(group: str, name: str, origin: str, cls: Any) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Plugin)):
        raise PluginError(f"plugin {name!r} in group {group!r} ({origin}) is not a subclass of "
                          "hsae.interfaces.plugin.Plugin")
    written_for = getattr(cls, "contract", None)
    if written_for is not None and written_for != GROUPS[group]:
        raise PluginError(f"plugin {name!r} in group {group!r} ({origin}) was written for version {written_for} "
                          f"of the {group} contract; this hsae has version {GROUPS[group]} "
                          "(docs/plugins.md); update the plugin or install a matching hsae")


def load(group: str, name: str) -> type[Plugin]:
    """Import and return the plugin class registered as ``name`` in ``group``."""
    found = _declarations(group)
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise PluginError(f"no plugin named {name!r} in group {group!r}; available: {known}")
    declaration = _one(group, name, found[name])
    origin = f"{declaration.distribution}, {declaration.target}"
    try:
        cls = declaration.load()
    except Exception as exc:  # a broken third-party plugin must not take the others down
        raise PluginError(f"plugin {name!r} in group {group!r} (from {origin}) failed to import: "
                          f"{type(exc).__name__}: {exc}") from exc
    _check_class(group, name, origin, cls)
    return cls


def register(group: str, name: str, obj: type[Plugin]) -> type[Plugin]:
    """Make the plugin class ``obj`` available as ``name`` in ``group`` for this process, as an
    installed entry point would (for a notebook or a test); returns ``obj``. A name that an
    installed distribution declares, or that is registered already, is refused."""
    _check_group(group)
    _check_class(group, name, REGISTERED, obj)
    taken = _declarations(group).get(name)
    if taken:
        raise PluginError(f"plugin name {name!r} in group {group!r} is already declared: "
                          f"{' and '.join(f'{d.distribution} ({d.target})' for d in taken)}; pick another name")
    _registered.setdefault(group, {})[name] = obj
    return obj


def unregister(group: str, name: str) -> None:
    """Forget a class given to :func:`register` (installed entry points are not affected)."""
    _check_group(group)
    if name not in _registered.get(group, {}):
        raise PluginError(f"no plugin named {name!r} was registered in group {group!r} in this process")
    del _registered[group][name]


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
        for name, declarations in sorted(_declarations(group).items()):
            where = " and ".join(d.distribution for d in declarations)
            try:
                rows.append(PluginInfo(group, name, where, describe(load(group, name))))
            except PluginError as exc:
                rows.append(PluginInfo(group, name, where, "", str(exc)))
    return rows
