"""A steering run on a tiny offline Qwen3-VL, end to end through the command line: train, label,
steer (steering.jsonl and the Table-3-shaped summary), inspect, then re-judge with other judges
without generating (counted at the extractor)."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest
import yaml
from typer.testing import CliRunner

from hsae.cli.app import app
from hsae.steer.judging import read_records
from hsae.interfaces.extraction.transformers import TransformersExtractor
from hsae_plugins.judges.keyword import normalised

from steerkit import chat_server

CLUSTERS, PER_CLUSTER = 2, 4
ARMS = ("baseline", "rand1", "best_child", "cluster")


def invoke(*args) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result.output


@pytest.fixture(scope="module")
def model_calls():
    """Counts of the extractor's model-running methods, while the module's tests run."""
    counts = Counter()
    originals = {name: getattr(TransformersExtractor, name) for name in ("load", "generate", "token_logits")}

    def counted(name):
        def call(self, *args, **kwargs):
            counts[name] += 1
            return originals[name](self, *args, **kwargs)
        return call

    for name in originals:
        setattr(TransformersExtractor, name, counted(name))
    yield counts
    for name, method in originals.items():
        setattr(TransformersExtractor, name, method)


@pytest.fixture(scope="module")
def steered(tmp_path_factory, tiny_model_dir, model_calls):
    folder = tmp_path_factory.mktemp("steer")
    recipe = {
        "name": "tiny_steer",
        "extract": {"extractor": {"name": "qwen3_vl", "model": str(tiny_model_dir("qwen3_vl")), "layer": "visual.blocks.1",
                                  "device": "cpu"},
                    "dataset": {"name": "synthetic_colors", "n_images": 96}},
        "model": {"levels": [{"n_latents": 32, "encoder": {"name": "topk", "k": 4}},
                             {"n_latents": 6, "encoder": {"name": "topk", "k": 1}, "start_step": 50}]},
        "train": {"steps": 150, "batch_size": 256, "lr": 2e-3, "threads": 1, "checkpoint_every": 1000},
        "steer": {"clusters": CLUSTERS, "images": {"name": "synthetic_colors", "n_images": 112},
                  "images_per_cluster": PER_CLUSTER, "top_images": 4, "max_new_tokens": 6, "batch_size": 4},
    }
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    output = invoke("run", path, "--out", folder / "run")
    return folder / "run", output, dict(model_calls)


def test_steering_writes_records_and_the_summary(steered):
    run, output, calls = steered
    records = read_records(run / "steering.jsonl")
    assert len(records) == CLUSTERS * PER_CLUSTER * 2 * len(ARMS)
    per_row = Counter((r["experiment"], r["cluster"], r["image_number"]) for r in records)
    assert set(per_row.values()) == {len(ARMS)} and len(per_row) == CLUSTERS * PER_CLUSTER * 2
    for record in records:
        assert 96 <= record["image_number"] < 112  # held-out images only
        assert isinstance(record["caption"], str)
        assert record["judgements"]["keyword"]["expressed"] in (True, False)
        if record["arm"] != "baseline":
            assert (record["clamp"] == 0.0) == (record["experiment"] == "suppression")
    summary = json.loads((run / "steering.json").read_text())
    table = summary["judges"]["keyword"]
    assert set(table["insertion"]) == set(ARMS) and table["insertion"]["cluster"]["n"] == CLUSTERS * PER_CLUSTER
    for cluster in summary["clusters"]:
        arms = {arm["name"]: arm for arm in cluster["arms"]}
        assert arms["cluster"]["latents"] == cluster["atoms"] and len(cluster["atoms"]) >= 2
        assert arms["best_child"]["latents"][0] in cluster["atoms"] and arms["rand1"]["latents"][0] in cluster["atoms"]
        assert arms["cluster"]["clamp"] == pytest.approx(4.0 * cluster["mu"]) and cluster["mu"] > 0
    assert "Appeared (%)" in output and "Removed (%)" in output and "n=8" in output
    # one baseline and, per experiment, three arms per batch of images
    assert calls["generate"] == CLUSTERS * (1 + 2 * 3)


def test_labels_are_written_and_inspect_shows_them(steered):
    run, _, _ = steered
    labels = json.loads((run / "labels.json").read_text())["units"]
    summary = json.loads((run / "steering.json").read_text())
    for cluster in summary["clusters"]:
        entry = labels[cluster["unit"]]
        assert entry["labeller"] == "class_names" and entry["label"] == cluster["concept"]["name"]
    invoke("label", run, "--level", "1", "--top-images", "3")
    labels = json.loads((run / "labels.json").read_text())["units"]
    assert any(unit.startswith("1:") for unit in labels) and any(unit.startswith("2:") for unit in labels)
    output = invoke("inspect", run)
    some = next(entry["label"] for unit, entry in labels.items() if unit.startswith("2:"))
    assert f"({some})" in output


def test_rejudging_generates_nothing(steered, model_calls):
    run, _, _ = steered
    before = dict(model_calls)
    records = read_records(run / "steering.jsonl")
    words = Counter(w for r in records for w in normalised(r["caption"]))
    assert words, "the tiny model's captions hold no word at all"  # they do: the tiny model is seeded
    word = words.most_common(1)[0][0]
    concepts = {r["concept"] for r in records}
    spec = yaml.safe_dump({"name": "keyword", "words": {c: [word] for c in concepts}}, default_flow_style=True)
    output = invoke("judge", run, "--judge", spec)
    with chat_server() as server:
        invoke("judge", run, "--judge", yaml.safe_dump({"name": "openai_compatible", **server.options(timeout=5)},
                                                       default_flow_style=True))
    assert len(server.requests) == CLUSTERS * PER_CLUSTER * 2 and server.images == [1] * len(server.requests)
    assert dict(model_calls) == before  # neither judge ran the model
    records = read_records(run / "steering.jsonl")
    assert all({"keyword", "openai_compatible"} <= set(r["judgements"]) for r in records)
    assert sum(r["judgements"]["keyword"]["expressed"] for r in records) > 0
    summary = json.loads((run / "steering.json").read_text())["judges"]
    assert summary["keyword"]["insertion"]["baseline"]["k"] > 0 and "Appeared (%)" in output
    assert summary["openai_compatible"]["insertion"]["baseline"]["n"] == CLUSTERS * PER_CLUSTER


def exit_code_of(capsys, monkeypatch, *args) -> tuple[int, str]:
    """``hsae ARGS`` through ``main()``, which maps errors to exit codes."""
    from hsae.cli.app import main

    monkeypatch.setattr("sys.argv", ["hsae", *map(str, args)])
    monkeypatch.setenv("COLUMNS", "300")
    with pytest.raises(SystemExit) as stopped:
        main()
    return stopped.value.code, " ".join(capsys.readouterr().out.split())


def test_bad_steering_input_is_a_message(steered, tmp_path, capsys, monkeypatch):
    run, _, _ = steered
    code, out = exit_code_of(capsys, monkeypatch, "steer", run, "--set", "steer.clusters=50")
    assert code == 2 and "50 clusters asked for" in out
    code, out = exit_code_of(capsys, monkeypatch, "steer", run, "--set", "steer.alpha=-1")
    assert code == 2 and "steer.alpha" in out
    code, out = exit_code_of(capsys, monkeypatch, "judge", run, "--judge", "oracle")
    assert code == 2 and "no plugin named 'oracle' in group 'hsae.judges'" in out
    code, out = exit_code_of(capsys, monkeypatch, "judge", tmp_path, "--judge", "keyword")
    assert code == 2 and "steering.jsonl does not exist" in out
    code, out = exit_code_of(capsys, monkeypatch, "label", run, "--labeller", "{name: vlm, model: /no/such/model}")
    assert code == 2 and "not a local model directory" in out


def test_an_interrupted_steering_run_resumes_with_the_clusters_it_finished(steered, tmp_path, model_calls):
    from hsae.cli.interventions import steer_config
    from hsae.steer.partial import PARTIAL_FILE
    from hsae.steer.run import run_steering

    original, _, _ = steered
    run = tmp_path / "copy"
    shutil.copytree(original, run)
    (run / "steering.jsonl").unlink()
    config = steer_config(run, [])
    per_cluster = PER_CLUSTER * (1 + 2 * 3)  # images captioned per cluster

    def stop_in_the_second_cluster(done, total):
        if done > per_cluster:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_steering(run, config, stop_in_the_second_cluster)
    assert (run / PARTIAL_FILE).exists() and not (run / "steering.jsonl").exists()
    before = model_calls["generate"]
    run_steering(run, config)
    assert model_calls["generate"] - before == 1 + 2 * 3  # the second cluster's one batch, not the first's
    assert not (run / PARTIAL_FILE).exists()
    again = [(r["experiment"], r["cluster"], r["image_number"], r["arm"], r["caption"]) for r in read_records(run / "steering.jsonl")]
    first = [(r["experiment"], r["cluster"], r["image_number"], r["arm"], r["caption"]) for r in read_records(original / "steering.jsonl")]
    assert sorted(again) == sorted(first)
