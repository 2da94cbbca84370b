"""The contract every plugin shares: a typed options model and a one-line description."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class PluginConfig(BaseModel):
    """Base of a plugin's options. Unknown keys are rejected; subclasses add typed fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Plugin:
    """A plugin class declares ``Config`` (its options) and documents itself in its first
    docstring line, which ``hsae plugins`` shows. It is built as ``cls(config)`` by the
    registry after the options were validated against ``Config``. ``contract``: the version of
    its group's contract the class was written for (``hsae.registry.GROUPS``); the registry
    refuses a class that states another one (None: the current one)."""

    Config: ClassVar[type[PluginConfig]] = PluginConfig
    contract: ClassVar[int | None] = None

    def __init__(self, config: PluginConfig | None = None) -> None:
        self.config = config if config is not None else self.Config()


def describe(cls: type) -> str:
    """First line of a class's docstring, or '' when it has none."""
    doc = (cls.__doc__ or "").strip()
    return doc.splitlines()[0].strip() if doc else ""
