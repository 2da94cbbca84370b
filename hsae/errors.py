"""The user-facing error types; the CLI maps them to exit codes (2: bad input, 1: failure,
128 + the signal's number: stopped by a signal)."""


class HsaeError(Exception):
    """Base of every error the toolkit raises on purpose."""


class BadInput(HsaeError):
    """The user's input (a recipe, a file, a plugin option) is wrong; exit code 2."""


class PluginError(BadInput):
    """A plugin is unknown, fails to import, or was given options it does not accept."""


class Interrupted(HsaeError):
    """A run stopped on a signal (SIGINT, SIGTERM) after saving what it had; exit code 128 + signal."""

    def __init__(self, message: str, signal_number: int):
        super().__init__(message)
        self.signal_number = signal_number
