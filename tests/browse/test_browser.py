"""`hsae browse` in a real headless Chromium: the page loads from disk without console errors,
shows every level, expands parents to their children (checked in the DOM after its scripts
ran), fills the detail pane, and draws a screenshot that is not blank."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest

from chromium import chromium, console_errors, open_page, screenshot_spread, wait_for
from hsae.browse.site import browse_run
from hsae.run.pipeline import Hooks, run_recipe
from hsae.plots import write_run_plots
from hsae.recipe.load import parse_recipe
from hsae.run.run_dir import RunDir

THREE_LEVELS = {
    "name": "three",
    "data": {"dataset": {"name": "synthetic_hierarchy", "n_samples": 2000, "width": 16, "seed": 2}},
    "model": {"stop_gradient": "bilateral", "levels": [
        {"n_latents": 48, "encoder": {"name": "topk", "k": 3}},
        {"n_latents": 12, "encoder": {"name": "topk", "k": 1}},
        {"n_latents": 4, "encoder": {"name": "topk", "k": 1}}]},
    "train": {"steps": 80, "batch_size": 64, "warmup_steps": 5, "checkpoint_every": 1000, "log_every": 10,
              "threads": 1},
    "eval": {"backbone": {"name": "precomputed"}},
}


def train(tree: dict, out: Path) -> Path:
    run_recipe(parse_recipe(tree, "test.yaml"), tree, RunDir(out), Hooks())
    return out


@pytest.fixture(scope="module")
def three_level_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("browse")
    run = train(copy.deepcopy(THREE_LEVELS), root / "run")
    (run / "labels.json").write_text(json.dumps({"units": {"3:0": {"label": "a planted family"},
                                                           "1:5": {"label": "leaf five"}}}))
    write_run_plots(run)
    return run, browse_run(run, root / "site")


def test_the_page_shows_every_level_and_expands_parents_to_children(three_level_site):
    run, index = three_level_site
    browser = chromium()
    try:
        open_page(browser, index)
        assert browser.execute_script("return document.querySelectorAll('#levels tr[data-level]').length") == 3
        roots = browser.execute_script("return document.querySelectorAll('#tree > ul > li.unit[data-level=\"3\"]').length")
        assert roots == 4
        assert "a planted family" in browser.execute_script("return document.getElementById('tree').innerText")
        # expand a level-3 parent, then one of its level-2 children
        browser.execute_script("document.querySelector('li.unit[data-level=\"3\"] button.toggle:not(:disabled)').click()")
        level2 = wait_for(browser, "document.querySelectorAll('li.unit.open[data-level=\"3\"] li.unit[data-level=\"2\"]').length")
        parent = browser.execute_script("return document.querySelector('li.unit.open[data-level=\"3\"]').dataset.unit")
        hierarchy = json.loads((run / "hierarchy.json").read_text())
        assert level2 == len(hierarchy["levels"][1]["children"][parent])
        browser.execute_script("document.querySelector('li.unit[data-level=\"2\"] button.toggle:not(:disabled)').click()")
        level1 = wait_for(browser, "document.querySelectorAll('li.unit.open[data-level=\"2\"] li.unit[data-level=\"1\"]').length")
        child = browser.execute_script("return document.querySelector('li.unit.open[data-level=\"2\"]').dataset.unit")
        assert level1 == len(hierarchy["levels"][0]["children"][child])
        # the detail pane of a level-1 unit: histogram bars and nearest atoms
        browser.execute_script("document.querySelector('li.unit[data-level=\"1\"] .name').click()")
        wait_for(browser, "document.querySelector('#detail svg.hist rect')")
        assert browser.execute_script("return document.querySelectorAll('#detail li').length") == 5
        # search by label and by LEVEL:INDEX
        search = browser.find_element("id", "search")
        search.send_keys("leaf five")
        wait_for(browser, "document.getElementById('results').innerText.includes('L1 #5')")
        assert browser.execute_script("return document.querySelectorAll('#plots img').length") == 3
        colours, spread = screenshot_spread(browser)
        assert colours > 20 and spread > 5, (colours, spread)
        assert console_errors(browser) == []
    finally:
        browser.quit()


@pytest.mark.slow
def test_a_20000_unit_run_draws_its_first_view_in_under_two_seconds(tmp_path):
    tree = copy.deepcopy(THREE_LEVELS)
    tree["data"]["dataset"].update(n_samples=1000, width=16)
    tree["model"]["levels"] = [{"n_latents": 20000, "encoder": {"name": "topk", "k": 4}},
                               {"n_latents": 400, "encoder": {"name": "topk", "k": 1}}]
    tree["train"].update(steps=20, batch_size=128)
    tree["eval"] = {"backbone": {"name": "precomputed"}, "null_draws": 2}
    run = train(tree, tmp_path / "run")
    index = browse_run(run, tmp_path / "site")
    assert len(list((tmp_path / "site" / "data").glob("units-1-*.js"))) == 40  # on demand, 500 units a file
    browser = chromium()
    try:
        open_page(browser, index)
        first_view_ms = browser.execute_script("return window.hsaeFirstView")
        print(f"first view of a 20,000-unit run: {first_view_ms:.0f} ms", file=sys.stderr)
        assert first_view_ms < 2000
        assert browser.execute_script("return document.querySelectorAll('#tree li.unit[data-level=\"2\"]').length") == 200
        assert console_errors(browser) == []
    finally:
        browser.quit()
