"""The parts of a steering run: clusters at any depth, clamps and arms on a hand-made store,
the matched arm, the Wilson interval, the summary's counting, and the keyword and question
judges' parsing."""

from __future__ import annotations

import pytest
import torch

from hsae.concepts.units import Hierarchy
from hsae.errors import BadInput
from hsae.interfaces.judge import JudgeRow
from hsae.intervene.model_sae import ModelSAE
from hsae.sae.sae import SAE
from hsae.steer.config import SteerConfig
from hsae.steer.plan import choose_clusters, plan_clusters
from hsae.steer.summary import summarise, wilson
from hsae.store import ActivationStore, StoreWriter
from hsae_plugins.encoders.relu import ReLUEncoder
from hsae_plugins.judges.keyword import KeywordJudge, singular
from hsae_plugins.judges.question import labelled_arms, question, verdicts_from

TWO_LEVELS = Hierarchy([4, 2], {2: {0: [0, 1], 1: [2, 3]}})
# Pooled (mean) activations per image of atoms 0-3; atom 3 never fires.
IMAGES = [
    [[3, 1, 0, 0], [1, 1, 0, 0]],   # image 0: pooled [2, 1, 0, 0]
    [[1, 0, 0, 0], [1, 0, 0, 0]],   # image 1: pooled [1, 0, 0, 0]
    [[0, 0, 5, 0]],                 # image 2: pooled [0, 0, 5, 0]
    [[0, 0.5, 1, 0], [0, 0.5, 3, 0]],  # image 3: pooled [0, 0.5, 2, 0]
]


def identity_sae(order=(0, 1, 2, 3)) -> SAE:
    """z = relu(x) read in ``order``: latent k is feature order[k]."""
    sae = SAE(4, 4, ReLUEncoder(n_inputs=4, n_latents=4))
    with torch.no_grad():
        sae.W_enc.copy_(torch.eye(4)[list(order)])
        sae.W_dec.copy_(torch.eye(4)[list(order)].t())
    return sae


@pytest.fixture
def store(tmp_path):
    with StoreWriter(tmp_path / "s.h5", width=4, with_image_index=True) as writer:
        for n, rows in enumerate(IMAGES):
            writer.append(torch.tensor(rows, dtype=torch.float32).numpy() * 2.0, image_index=n)  # scale 0.5 undoes ×2
    with ActivationStore(tmp_path / "s.h5") as opened:
        yield opened


def test_atoms_beneath_a_latent_at_any_depth():
    three = Hierarchy([6, 3, 2], {2: {0: [0, 1], 1: [2, 3], 2: [4, 5]}, 3: {0: [0, 1], 1: [2]}})
    assert three.atoms(3, 0) == [0, 1, 2, 3] and three.atoms(3, 1) == [4, 5] and three.atoms(1, 4) == [4]
    assert three.clusters(3) == [0] and three.clusters(2) == [0, 1, 2]
    membership = three.membership([(3, 0), (2, 2)], 8, offset=2)
    assert membership[:, 0].nonzero().flatten().tolist() == [2, 3, 4, 5]
    assert membership[:, 1].nonzero().flatten().tolist() == [6, 7]
    with pytest.raises(BadInput, match="levels 1..3"):
        three.atoms(4, 0)


def test_clusters_drawn_or_named():
    config = SteerConfig(clusters=[1])
    assert choose_clusters(TWO_LEVELS, config) == [1]
    assert choose_clusters(TWO_LEVELS, SteerConfig(clusters=2)) == [0, 1]
    with pytest.raises(BadInput, match="only 2 latents"):
        choose_clusters(TWO_LEVELS, SteerConfig(clusters=3))
    with pytest.raises(BadInput, match="do not have two or more children"):
        choose_clusters(Hierarchy([4, 2], {2: {0: [0, 1, 2], 1: [3]}}), SteerConfig(clusters=[1]))


def test_clamps_and_arms(store):
    config = SteerConfig(clusters=[0, 1], top_images=2, alpha=4.0, code="relu", seed=3)
    plans = plan_clusters(store, TWO_LEVELS, ModelSAE(identity_sae(), 0, 4), 0.5, config)
    first, second = plans
    assert first.unit == "2:0" and first.top_images == [0, 1]
    assert first.mu == pytest.approx((2 + 1 + 1 + 0) / 4)
    arms = {arm.name: arm for arm in first.arms}
    assert arms["cluster"].latents == [0, 1] and arms["cluster"].clamp == pytest.approx(4.0)
    assert arms["best_child"].latents == [0]
    assert second.top_images == [2, 3] and second.mu == pytest.approx((5 + 0 + 2 + 0) / 4)
    arms = {arm.name: arm for arm in second.arms}
    assert arms["best_child"].latents == [2] and arms["rand1"].latents == [2]  # atom 3 never fires


def test_the_matched_arm_takes_the_lowest_mean_rank_on_the_same_images(store):
    config = SteerConfig(clusters=[0], top_images=2, alpha=2.0, code="relu")
    matched = ModelSAE(identity_sae(order=(3, 2, 1, 0)), 0, 4)  # latent k reads feature 3 - k
    (plan,) = plan_clusters(store, TWO_LEVELS, ModelSAE(identity_sae(), 0, 4), 0.5, config, (matched, 0.5))
    arm = plan.arms[-1]
    assert arm.name == "matched" and arm.which == "matched"
    assert arm.latents == [2, 3]  # features 1 and 0: the best ranks on images 0 and 1
    assert arm.clamp == pytest.approx(2.0 * (2 + 1 + 1 + 0) / 4)


def test_wilson_interval():
    low, high = wilson(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)
    assert wilson(0, 24) == (0.0, pytest.approx(0.1380, abs=1e-4))
    assert wilson(24, 24)[1] == 1.0 and wilson(0, 0) == (None, None)


def test_summary_counts_suppression_only_where_the_baseline_expresses():
    def record(experiment, number, arm, expressed):
        return {"experiment": experiment, "cluster": "2:0", "image_number": number, "arm": arm,
                "judgements": {"j": {"expressed": expressed}}}

    records = [record("insertion", 0, "baseline", False), record("insertion", 0, "cluster", True),
               record("insertion", 1, "baseline", False), record("insertion", 1, "cluster", None),
               record("suppression", 0, "baseline", True), record("suppression", 0, "cluster", False),
               record("suppression", 1, "baseline", False), record("suppression", 1, "cluster", False),
               record("suppression", 2, "baseline", True), record("suppression", 2, "cluster", True)]
    table = summarise(records, "j")
    assert table["insertion"]["cluster"] == {**table["insertion"]["cluster"], "k": 1, "n": 1, "errors": 1}
    assert table["suppression"]["cluster"]["k"] == 1 and table["suppression"]["cluster"]["n"] == 2
    assert table["suppression"]["baseline"]["k"] == 0 and table["suppression"]["baseline"]["n"] == 2


def test_keyword_judge_normalises_case_and_plurals():
    assert [singular(w) for w in ("boxes", "ponies", "cars", "glass", "bus", "dishes")] == \
        ["box", "pony", "car", "glass", "bus", "dish"]
    judge = KeywordJudge(KeywordJudge.Config(words={"table": ["dining table"]}))
    row = JudgeRow("r", "table", ["Tables"], {"a": "Two TABLES and chairs.", "b": "A dining-table!", "c": "a tablet"})
    verdicts = judge.judge([row])[0]
    assert verdicts["a"].expressed and verdicts["b"].expressed and not verdicts["c"].expressed


def test_question_labels_are_a_per_row_permutation_and_answers_map_back():
    captions = {"baseline": "x", "rand1": "y", "best_child": "z", "cluster": "w"}
    orders = {tuple(labelled_arms(JudgeRow(f"row{i}", "c", [], captions), 0).values()) for i in range(20)}
    assert len(orders) > 1  # rows are labelled differently
    row = JudgeRow("row1", "table", [], captions)
    labels = labelled_arms(row, 0)
    assert sorted(labels) == ["A", "B", "C", "D"] and sorted(labels.values()) == sorted(captions)
    assert labels == labelled_arms(row, 0)  # and reproducibly
    text = question(row, labels)
    assert '"table"' in text and all(f"{label}: {captions[arm]}" in text for label, arm in labels.items())
    answer = "```json\n" + str({label: {"expressed": arm == "cluster", "reason": "r"} for label, arm in labels.items()}
                                ).replace("'", '"').replace("True", "true").replace("False", "false") + "\n```"
    verdicts = verdicts_from(answer, labels)
    assert {arm: v.expressed for arm, v in verdicts.items()} == {arm: arm == "cluster" for arm in captions}
    broken = verdicts_from('{"A": {"expressed": true}}', labels)
    assert all(v.expressed is None and "no verdict for label" in v.error for v in broken.values())


def test_hsae_plugins_lists_the_judges_and_labellers(capsys, monkeypatch):
    from hsae.cli.app import main

    monkeypatch.setattr("sys.argv", ["hsae", "plugins"])
    monkeypatch.setenv("COLUMNS", "300")
    try:
        main()
    except SystemExit as exc:
        assert not exc.code
    out = capsys.readouterr().out
    judges = out[out.index("hsae.judges"):out.index("hsae.labellers")]
    labellers = out[out.index("hsae.labellers"):]
    for name in ("keyword", "hf_vlm", "openai_compatible"):
        assert f" {name} " in judges
    for name in ("class_names", "vlm", "openai_compatible"):
        assert f" {name} " in labellers
