"""An example third-party hsae plugin package (docs/plugins.md walks through it)."""
