"""Generated bad input: mutations of a valid recipe, store, run directory and command line, each
made invalid by construction, run through ``hsae`` in this process (and a few as real
subprocesses). Every one must end with exit code 2 and a message, never a traceback, and write
nothing outside ``--out``. Together the tests below draw well over 200 cases."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runkit import cli_command, cli_env, run_cli

WIDTH, ROWS = 8, 256
SETTINGS = dict(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))


def base_recipe() -> dict:
    """A valid recipe that trains in a moment on ``store.h5`` (written by :func:`write_store`)."""
    return {
        "name": "base",
        "data": {"activations": "store.h5"},
        "model": {"levels": [{"n_latents": 16, "encoder": {"name": "topk", "k": 2}},
                             {"n_latents": 4, "encoder": {"name": "topk", "k": 1}, "start_step": 2}]},
        "train": {"steps": 4, "batch_size": 32, "warmup_steps": 1, "checkpoint_every": 2, "log_every": 1,
                  "threads": 1, "prefetch": 0},
        "eval": {},
    }


def write_store(path: Path, rows: np.ndarray | None = None, **extra) -> Path:
    rows = np.random.default_rng(0).normal(size=(ROWS, WIDTH)).astype(np.float32) if rows is None else rows
    with h5py.File(path, "w") as file:
        file.create_dataset("activations", data=rows)
        for name, data in extra.items():
            file.create_dataset(name, data=data)
    return path


@dataclass
class Case:
    """What one generated case writes into its folder and the ``hsae`` arguments it runs."""

    label: str
    recipe: dict | bytes | None = field(default_factory=base_recipe)
    store: Callable[[Path], object] = write_store
    args: Callable[[Path], list] = lambda folder: ["run", folder / "recipe.yaml", "--out", folder / "out"]
    before: Callable[[Path], None] = lambda folder: None  # e.g. a finished run to revisit


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def run_case(case: Case) -> None:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        case.store(folder / "store.h5")
        if isinstance(case.recipe, bytes):
            (folder / "recipe.yaml").write_bytes(case.recipe)
        elif case.recipe is not None:
            (folder / "recipe.yaml").write_text(yaml.safe_dump(case.recipe, sort_keys=False))
        case.before(folder)
        existing = files_under(folder)
        cwd = os.getcwd()
        os.chdir(folder)
        try:
            result = run_cli(*case.args(folder))
        finally:
            os.chdir(cwd)
        assert "Traceback" not in result.output, f"{case.label}:\n{result.output}"
        assert result.code == 2, f"{case.label}: exit {result.code}\n{result.output}"
        assert result.output.strip(), case.label
        written = {p for p in files_under(folder) - existing if not p.startswith("out")}
        assert not written, f"{case.label}: wrote outside --out: {sorted(written)}"


# -- recipe mutations: one key set to a value it cannot take ----------------------------------

def text_but(*allowed: str):
    return st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12).filter(lambda t: t not in allowed)


non_positive = st.integers(-10**6, 0)
not_a_number = st.one_of(st.text(min_size=1, max_size=8).filter(lambda t: not _numeric(t)), st.lists(st.integers(), max_size=2),
                         st.dictionaries(st.text(max_size=3), st.integers(), min_size=1, max_size=2))
too_big = st.integers(10**9, 10**15)


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


BAD_VALUES = {
    "train.steps": st.one_of(non_positive, not_a_number, st.floats(0.1, 99.9).filter(lambda x: x != int(x))),
    "train.batch_size": st.one_of(non_positive, not_a_number, too_big),
    "train.lr": st.one_of(st.floats(-10, 0), not_a_number),
    "train.decay_start": st.one_of(st.floats(1.01, 100), st.floats(-100, -0.01)),
    "train.precision": text_but("float32", "bfloat16", "float16"),
    "train.nonfinite": text_but("stop", "skip"),
    "train.checkpoint_every": non_positive,
    "train.threads": non_positive,
    "model.levels.0.n_latents": st.one_of(non_positive, not_a_number, too_big),
    "model.levels.1.n_latents": st.one_of(non_positive, too_big),
    "model.levels.0.encoder.k": st.one_of(st.integers(16, 10**6), non_positive),  # k >= n_latents: no sparsity
    "model.levels.1.encoder.k": st.integers(4, 1000),
    "model.levels.0.encoder.name": text_but("topk", "batchtopk", "relu", "jumprelu", "gated"),
    "model.levels": st.one_of(st.just([]), st.integers(), st.text(max_size=5)),
    "model.stop_gradient": text_but("bilateral", "partial", "none", "full"),
    "data.activations": st.sampled_from(["nowhere.h5", ".", "recipe.yaml", "/dev/null", "store.h5/inner"]),
    "data.width": st.one_of(st.integers(1, WIDTH - 1), st.integers(WIDTH + 1, 10**6), non_positive),
    "eval.top_m": non_positive,
    "eval.duplicate_threshold": st.one_of(st.floats(1.001, 10), st.floats(-10, 0)),
    "name": st.one_of(st.lists(st.integers(), min_size=1, max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), min_size=1)),
}


def set_key(tree: dict, key: str, value) -> dict:
    node = tree
    parts = key.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if isinstance(node, list):
        node[int(parts[-1])] = value
    else:
        node[parts[-1]] = value
    return tree


@st.composite
def bad_value_cases(draw) -> Case:
    key = draw(st.sampled_from(sorted(BAD_VALUES)))
    value = draw(BAD_VALUES[key])
    return Case(f"{key} = {value!r}", set_key(base_recipe(), key, value))


SECTIONS = ["", "data", "model", "train", "eval", "model.levels.0", "model.levels.0.encoder"]
KNOWN = {"name", "data", "model", "train", "eval", "extract", "variants", "activations", "dataset", "width", "normalize",
         "levels", "stop_gradient", "method"}


@st.composite
def unknown_key_cases(draw) -> Case:
    section = draw(st.sampled_from(SECTIONS))
    key = draw(st.from_regex(r"[a-z][a-z_]{2,12}", fullmatch=True).filter(lambda k: k not in KNOWN))
    tree = base_recipe()
    node = tree
    for part in filter(None, section.split(".")):
        node = node[int(part)] if isinstance(node, list) else node[part]
    if key in node:
        key += "_x"
    node[key] = draw(st.integers())
    return Case(f"unknown key {section}.{key}", tree)


@st.composite
def broken_file_cases(draw) -> Case:
    text = yaml.safe_dump(base_recipe(), sort_keys=False).encode()
    kind = draw(st.sampled_from(["not utf-8", "not a mapping", "bad yaml", "empty", "missing model"]))
    if kind == "not utf-8":
        at = draw(st.integers(0, len(text)))
        junk = draw(st.binary(min_size=1, max_size=8)) + b"\xff\xfe"
        data = text[:at] + junk + text[at:]
    elif kind == "not a mapping":
        data = draw(st.sampled_from([b"- a\n- b\n", b"42\n", b"'just text'\n", b"[1, 2]\n"]))
    elif kind == "bad yaml":
        data = text[: draw(st.integers(10, len(text)))] + draw(st.sampled_from([b"\n  : [\n", b"\n\t- x: {\n", b"\nx: ]\n"]))
    elif kind == "empty":
        data = draw(st.sampled_from([b"", b"\n", b"# only a comment\n"]))
    else:
        tree = base_recipe()
        del tree["model"]
        data = yaml.safe_dump(tree).encode()
    return Case(f"recipe file: {kind}", data)


# -- store mutations --------------------------------------------------------------------------

def _rows() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(ROWS, WIDTH)).astype(np.float32)


@st.composite
def bad_store_cases(draw) -> Case:
    kind = draw(st.sampled_from(["nan", "inf", "int dtype", "1-D", "3-D", "no rows", "renamed", "group",
                                 "image_index shape", "image_index decreasing", "embeddings 1-D", "truncated",
                                 "not hdf5", "empty file"]))
    row = draw(st.integers(0, ROWS - 1))

    def store(path: Path):
        rows = _rows()
        if kind in ("nan", "inf"):
            rows[row, draw(st.integers(0, WIDTH - 1))] = np.nan if kind == "nan" else -np.inf
            write_store(path, rows)
        elif kind == "int dtype":
            write_store(path, (rows * 10).astype(np.int32))
        elif kind == "1-D":
            write_store(path, rows[:, 0])
        elif kind == "3-D":
            write_store(path, rows.reshape(ROWS // 2, 2, WIDTH))
        elif kind == "no rows":
            write_store(path, rows[:0])
        elif kind == "renamed":
            with h5py.File(path, "w") as file:
                file["acts"] = rows
        elif kind == "group":
            with h5py.File(path, "w") as file:
                file.create_group("activations")["x"] = rows
        elif kind == "image_index shape":
            write_store(path, rows, image_index=np.arange(ROWS + 3))
        elif kind == "image_index decreasing":
            index = np.repeat(np.arange(ROWS // 4), 4)
            index[row] = -5 if row == 0 else index[row] - 3
            write_store(path, rows, image_index=index, embeddings=np.ones((ROWS // 4, 3), np.float32))
        elif kind == "embeddings 1-D":
            write_store(path, rows, image_index=np.repeat(np.arange(ROWS // 4), 4), embeddings=np.ones(ROWS // 4, np.float32))
        elif kind == "truncated":
            write_store(path, rows)
            data = path.read_bytes()
            path.write_bytes(data[: draw(st.integers(0, len(data) // 2))])
        elif kind == "not hdf5":
            path.write_bytes(draw(st.binary(min_size=1, max_size=64)))
        else:
            path.write_bytes(b"")

    recipe = base_recipe()
    if kind in ("image_index decreasing", "embeddings 1-D"):
        recipe["eval"] = {"backbone": {"name": "precomputed"}}
    return Case(f"store: {kind} (row {row})", recipe, store)


# -- command lines ----------------------------------------------------------------------------

@st.composite
def bad_command_cases(draw) -> Case:
    kind = draw(st.sampled_from(["set without =", "set bad yaml", "set into a value", "set list index", "set unknown",
                                 "out is a file", "out under a file", "recipe missing", "recipe is a folder",
                                 "unknown option", "eval not a run", "inspect not a run", "validate bad set",
                                 "empty set key"]))
    recipe = lambda folder: folder / "recipe.yaml"  # noqa: E731
    out = lambda folder: folder / "out"  # noqa: E731
    before = lambda folder: None  # noqa: E731
    junk = draw(st.from_regex(r"[a-z]{1,6}", fullmatch=True))
    if kind == "set without =":
        args = lambda f: ["run", recipe(f), "--out", out(f), "--set", f"train.{junk}"]  # noqa: E731
    elif kind == "set bad yaml":
        value = draw(st.sampled_from(["[", "{a", "]", "{a: [}", "'unclosed", "a: b: c", "*alias", "!!python/object:os.system x"]))
        args = lambda f: ["run", recipe(f), "--out", out(f), "--set", f"train.lr={value}"]  # noqa: E731
    elif kind == "set into a value":
        args = lambda f: ["run", recipe(f), "--out", out(f), "--set", f"train.steps.{junk}=1"]  # noqa: E731
    elif kind == "set list index":
        index = draw(st.integers(2, 99))
        args = lambda f: ["run", recipe(f), "--out", out(f), "--set", f"model.levels.{index}.n_latents=4"]  # noqa: E731
    elif kind == "set unknown":
        args = lambda f: ["run", recipe(f), "--out", out(f), "--set", f"train.zz{junk}=1"]  # noqa: E731
    elif kind == "out is a file":
        args = lambda f: ["run", recipe(f), "--out", f / "store.h5"]  # noqa: E731
    elif kind == "out under a file":
        args = lambda f: ["run", recipe(f), "--out", f / "recipe.yaml" / junk]  # noqa: E731
    elif kind == "recipe missing":
        args = lambda f: ["run", f / f"{junk}.yaml", "--out", out(f)]  # noqa: E731
    elif kind == "recipe is a folder":
        args = lambda f: ["validate", f]  # noqa: E731
    elif kind == "unknown option":
        args = lambda f: ["run", recipe(f), f"--{junk}-x", "--out", out(f)]  # noqa: E731
    elif kind == "eval not a run":
        args = lambda f: ["eval", out(f)]  # noqa: E731
        before = lambda f: out(f).mkdir()  # noqa: E731
    elif kind == "inspect not a run":
        args = lambda f: ["inspect", f / junk]  # noqa: E731
    elif kind == "validate bad set":
        args = lambda f: ["validate", recipe(f), "--set", "model.levels.0.encoder.k=99"]  # noqa: E731
    else:
        args = lambda f: ["run", recipe(f), "--out", out(f), "--set", f"=.{junk}"]  # noqa: E731
    return Case(f"command line: {kind} ({junk})", args=args, before=before)


# -- run directories of another version, damaged ----------------------------------------------

@st.composite
def bad_run_dir_cases(draw) -> Case:
    """A finished run's files replaced by a damaged or older version's, then ``hsae eval``."""
    target = draw(st.sampled_from(["config.json", "model.safetensors", "recipe.yaml"]))
    damage = draw(st.sampled_from(["garbage", "empty", "truncated", "wrong shape"]))

    def before(folder: Path) -> None:
        out = folder / "out"
        out.mkdir()
        (out / "recipe.yaml").write_text(yaml.safe_dump(base_recipe()))
        (out / "config.json").write_text(json.dumps({"hsae_version": "0.0.1", "n_inputs": WIDTH, "scale": 1.0,
                                                     "store": str(folder / "store.h5"), "model": base_recipe()["model"]}))
        from safetensors.torch import save_file
        import torch

        tensors = {}
        for l, (n, k) in enumerate(((16, 2), (4, 1)), start=1):
            tensors.update({f"levels.{l}.W_enc": torch.zeros(n, WIDTH), f"levels.{l}.b_enc": torch.zeros(n),
                            f"levels.{l}.W_dec": torch.zeros(WIDTH, n), f"levels.{l}.b_dec": torch.zeros(WIDTH)})
        save_file(tensors, out / "model.safetensors")
        path = out / target
        if damage == "garbage":
            path.write_bytes(b"\x00\xff garbage {[" * 3)
        elif damage == "empty":
            path.write_bytes(b"")
        elif damage == "truncated":
            path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
        elif target == "model.safetensors":
            save_file({"levels.1.W_enc": torch.zeros(3, 3)}, path)
        elif target == "config.json":
            path.write_text(json.dumps({"n_inputs": "eight", "model": {"levels": "none"}}))
        else:
            path.write_text("- not\n- a recipe\n")

    return Case(f"run directory: {target} {damage}", args=lambda f: ["eval", f / "out"], before=before)


def test_the_base_case_is_valid(tmp_path):
    """The cases below are invalid because of their mutation alone."""
    write_store(tmp_path / "store.h5")
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(base_recipe()))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        result = run_cli("run", tmp_path / "recipe.yaml", "--out", tmp_path / "out")
    finally:
        os.chdir(cwd)
    assert result.code == 0, result.output
    assert run_cli("eval", tmp_path / "out").code == 0


@settings(max_examples=100, **SETTINGS)
@given(bad_value_cases())
def test_recipe_values(case):
    run_case(case)


@settings(max_examples=25, **SETTINGS)
@given(st.one_of(unknown_key_cases(), broken_file_cases()))
def test_recipe_keys_and_files(case):
    run_case(case)


@settings(max_examples=40, **SETTINGS)
@given(bad_store_cases())
def test_stores(case):
    run_case(case)


@settings(max_examples=40, **SETTINGS)
@given(bad_command_cases())
def test_command_lines(case):
    run_case(case)


@settings(max_examples=20, **SETTINGS)
@given(bad_run_dir_cases())
def test_run_directories(case):
    run_case(case)


@pytest.mark.parametrize("recipe, extra", [
    (b"name: \xff\xfe\n", []),
    (yaml.safe_dump(set_key(base_recipe(), "model.levels.0.n_latents", 10**14)).encode(), []),
    (yaml.safe_dump(set_key(base_recipe(), "model.levels.0.encoder.k", 16)).encode(), []),
    (yaml.safe_dump(base_recipe()).encode(), ["--out", "store.h5"]),
])
def test_as_real_processes(tmp_path, recipe, extra):
    """The installed entry point, in a process of its own: exit 2, one message, no traceback."""
    write_store(tmp_path / "store.h5")
    (tmp_path / "recipe.yaml").write_bytes(recipe)
    args = ["run", "recipe.yaml", *(extra or ["--out", "out"])]
    done = subprocess.run(cli_command(*args), cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr and "error:" in done.stdout
