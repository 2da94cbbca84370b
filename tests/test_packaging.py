"""The install lists every package folder (plugins/ is installed as hsae_plugins)."""

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _package_folders() -> set[str]:
    found = set()
    for top, installed_as in (("hsae", "hsae"), ("plugins", "hsae_plugins")):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top).parts
            found.add(".".join((installed_as, *rel)))
    return found


def test_every_package_folder_is_installed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    assert _package_folders() <= listed, f"add to pyproject.toml: {sorted(_package_folders() - listed)}"


def test_no_bare_plugins_package_is_importable_by_that_name():
    import importlib.util

    assert importlib.util.find_spec("hsae_plugins") is not None
