"""First-party hsae plugins, importable as ``hsae_plugins`` and registered through entry points."""
