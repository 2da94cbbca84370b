"""The openai_compatible judge and labeller against a real chat-completions server on
127.0.0.1: good answers, a timeout, a 500, a body that is no chat completion, an answer that is
not the JSON asked for, an unreachable server and a retried 503. Every failure is a clear
per-row error, and the rows after it are answered."""

from __future__ import annotations

import socket

import pytest
from PIL import Image

from hsae import registry
from hsae.errors import BadInput
from hsae.interfaces.judge import JudgeRow
from hsae.interfaces.labeller import UnitEvidence
from hsae.steer.judging import apply_judge
from hsae.steer.summary import summarise

from steerkit import BROKEN, FLAKY, GARBAGE, RAMBLE, SLOW, chat_server

IMAGE = Image.new("RGB", (16, 16), (250, 0, 0))


def row(concept: str, number: int) -> JudgeRow:
    return JudgeRow(f"insertion/2:0/{number}", concept, [concept],
                    {"baseline": "a plain picture", "cluster": "yes, a red thing", "rand1": "yes red"}, IMAGE)


def judge_with(server, **extra):
    return registry.create("hsae.judges", {"name": "openai_compatible", **server.options(**extra)})


def test_judge_answers_errors_per_row_and_goes_on():
    with chat_server() as server:
        judge = judge_with(server)
        concepts = ["red", SLOW, BROKEN, GARBAGE, RAMBLE, "red"]
        out = judge.judge([row(c, n) for n, c in enumerate(concepts)])
    assert len(server.requests) == len(concepts) and server.images == [1] * len(concepts)
    for good in (out[0], out[5]):
        assert {arm: v.expressed for arm, v in good.items()} == {"baseline": False, "cluster": True, "rand1": True}
        assert all(v.error is None and v.raw.startswith("{") for v in good.values())
    expected = {1: "no reply from", 2: "HTTP 500", 3: "malformed reply", 4: "malformed answer"}
    for index, words in expected.items():
        for verdict in out[index].values():
            assert verdict.expressed is None and words in verdict.error, verdict.error
    assert out[1]["cluster"].error.endswith("within 0.5 s (after 1 tries)")
    assert out[4]["cluster"].raw == "I would rather not say."  # the raw answer is kept


def test_the_run_records_the_errors_and_counts_them_apart():
    records = []
    for number, concept in enumerate(["red", BROKEN, "red"]):
        for arm, caption in (("baseline", "a plain picture"), ("cluster", "yes red")):
            records.append({"experiment": "insertion", "cluster": "2:0", "concept": concept, "keywords": [concept],
                            "image_number": number, "arm": arm, "caption": caption})
    with chat_server() as server:
        apply_judge(judge_with(server), "api", records, lambda record: IMAGE)
    assert [r["judgements"]["api"]["error"] is None for r in records] == [True, True, False, False, True, True]
    table = summarise(records, "api")["insertion"]
    assert table["cluster"]["k"] == 2 and table["cluster"]["n"] == 2 and table["cluster"]["errors"] == 1
    assert table["baseline"]["k"] == 0 and table["baseline"]["errors"] == 1


def test_retries_with_backoff_then_succeed():
    with chat_server() as server:
        out = judge_with(server, retries=1).judge([row(FLAKY, 0)])
    assert len(server.requests) == 2
    assert out[0]["cluster"].expressed is True


def test_unreachable_server_is_a_per_row_error():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    judge = registry.create("hsae.judges", {"name": "openai_compatible", "url": f"http://127.0.0.1:{port}/v1",
                                            "model": "m", "retries": 1, "backoff": 0.0})
    out = judge.judge([row("red", 0)])
    assert all("unreachable" in v.error and "after 2 tries" in v.error for v in out[0].values())


def test_url_and_model_are_required(monkeypatch):
    monkeypatch.delenv("HSAE_CHAT_URL", raising=False)
    monkeypatch.delenv("HSAE_CHAT_MODEL", raising=False)
    with pytest.raises(BadInput, match="url and model"):
        registry.create("hsae.judges", {"name": "openai_compatible"})
    monkeypatch.setenv("HSAE_CHAT_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("HSAE_CHAT_MODEL", "from-env")
    assert registry.create("hsae.judges", {"name": "openai_compatible"}).client.model == "from-env"


def unit(number: int, label: str) -> UnitEvidence:
    return UnitEvidence(f"1:{number}", 1, number, ["img-a", "img-b"], [label, None], [0, 1], [IMAGE, IMAGE])


def test_labeller_answers_errors_per_unit_and_goes_on():
    with chat_server() as server:
        labeller = registry.create("hsae.labellers", {"name": "openai_compatible", **server.options()})
        out = labeller.label([unit(n, label) for n, label in enumerate(["red", SLOW, BROKEN, GARBAGE, RAMBLE, "red"])])
    assert server.images == [2] * 6
    assert "their dataset labels: red" in server.requests[0]
    for good in (out[0], out[5]):
        assert good.label == "red thing" and good.keywords == ["red", "crimson"] and good.error is None
    for index, words in {1: "no reply from", 2: "HTTP 500", 3: "malformed reply", 4: "malformed answer"}.items():
        assert out[index].label is None and words in out[index].error
    assert out[4].raw == "I would rather not say."
