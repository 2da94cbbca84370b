"""`hsae run` ends with the paths of its browser page and plots; `hsae browse` and `hsae export`
write them again / elsewhere; bad input is a message and exit 2."""

from __future__ import annotations

import json

from runkit import run_cli, small_recipe, write_recipe

PNG = b"\x89PNG\r\n\x1a\n"


def test_run_prints_the_browser_and_plots_it_wrote(tmp_path):
    out = tmp_path / "run"
    result = run_cli("run", write_recipe(tmp_path / "r.yaml", small_recipe({"steps": 60})), "--out", out)
    assert result.code == 0, result.output
    index = (out / "browse" / "index.html").resolve()
    assert f"browser: {index}" in result.output
    for name in ("training.png", "hms.png", "children.png"):
        path = (out / "plots" / name).resolve()
        assert str(path) in result.output and path.read_bytes()[:8] == PNG
    assert (out / "browse" / "data" / "top.js").read_text().startswith('hsaeData("top",')

    result = run_cli("browse", out, "--out", tmp_path / "site", "--max-rows", "500")
    assert result.code == 0, result.output
    assert (tmp_path / "site" / "index.html").exists() and (tmp_path / "site" / "plots" / "hms.png").exists()

    result = run_cli("export", out, tmp_path / "sl", "--format", "saelens")
    assert result.code == 0, result.output
    assert json.loads((tmp_path / "sl" / "level-2" / "cfg.json").read_text())["architecture"] == "topk"
    result = run_cli("export", out, tmp_path / "x", "--format", "onnx")
    assert result.code == 2 and "the formats are: saelens" in result.output


def test_browse_and_export_refuse_what_is_not_a_run(tmp_path):
    for command in (("browse", tmp_path / "nope"), ("export", tmp_path / "nope", tmp_path / "out")):
        result = run_cli(*command)
        assert result.code == 2 and "no such run directory" in result.output, result.output
