"""The install lists every package folder (plugins/ is installed as hsae_plugins), and the code
keeps to Python 3.10, which pyproject.toml promises."""

import ast
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, published for 3.10 (a test extra there)
    import tomli as tomllib

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


# Standard-library names added in Python 3.11 or later, by module (None: the module itself).
NEWER_THAN_310 = {
    "tomllib": None, "wsgiref.types": None,
    "typing": {"Self", "LiteralString", "Never", "NotRequired", "Required", "assert_never", "assert_type",
               "reveal_type", "dataclass_transform", "TypeVarTuple", "Unpack", "override", "TypeAliasType"},
    "enum": {"StrEnum", "verify", "ReprEnum", "EnumCheck", "FlagBoundary", "member", "nonmember", "global_enum"},
    "datetime": {"UTC"}, "contextlib": {"chdir"}, "asyncio": {"TaskGroup", "timeout", "Runner"},
    "hashlib": {"file_digest"}, "itertools": {"batched"}, "operator": {"call"}, "math": {"cbrt", "exp2"},
}
NEWER_BUILTINS = {"ExceptionGroup", "BaseExceptionGroup"}


def _newer_uses(tree: ast.AST) -> list[str]:
    found = []
    modules = {}  # local name -> module, for ``module.attr`` uses
    for node in ast.walk(tree):
        if getattr(ast, "TryStar", None) and isinstance(node, ast.TryStar):
            found.append(f"line {node.lineno}: except*")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in NEWER_THAN_310 and NEWER_THAN_310[alias.name] is None:
                    found.append(f"line {node.lineno}: import {alias.name}")
                modules[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module in NEWER_THAN_310:
            names = NEWER_THAN_310[node.module]
            for alias in node.names:
                if names is None or alias.name in names:
                    found.append(f"line {node.lineno}: from {node.module} import {alias.name}")
        elif isinstance(node, ast.Name) and node.id in NEWER_BUILTINS:
            found.append(f"line {node.lineno}: {node.id}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            names = NEWER_THAN_310.get(modules.get(node.value.id, ""))
            if names and node.attr in names:
                found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    return found


@pytest.mark.parametrize("top", ["hsae", "plugins", "tests", "benchmarks"])
def test_nothing_newer_than_python_310(top):
    """No 3.11+ syntax (``except*``) or standard-library name outside a version check: the
    fallback import above is the one allowed use, behind ``sys.version_info``."""
    problems = []
    for path in sorted((ROOT / top).rglob("*.py")):
        source = path.read_text()
        tree = ast.parse(source, filename=str(path), feature_version=(3, 10))
        uses = [use for use in _newer_uses(tree) if path != Path(__file__).resolve() or "tomllib" not in use]
        problems += [f"{path.relative_to(ROOT)} {use}" for use in uses]
    assert not problems, "Python 3.11+ only:\n" + "\n".join(problems)


def test_the_check_finds_newer_names():
    source = "import tomllib\nfrom typing import Self\nimport enum\nx = enum.StrEnum\ntry:\n    pass\nexcept* ValueError:\n    pass\n"
    assert len(_newer_uses(ast.parse(source))) == 4
