"""The user-facing error types; the CLI maps them to exit codes (2: bad input, 1: failure)."""


class HsaeError(Exception):
    """Base of every error the toolkit raises on purpose."""


class BadInput(HsaeError):
    """The user's input (a recipe, a file, a plugin option) is wrong; exit code 2."""


class PluginError(BadInput):
    """A plugin is unknown, fails to import, or was given options it does not accept."""
