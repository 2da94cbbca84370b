"""The extraction meter: a caller's (done, total) callback, or a rich bar with images/s and tokens/s."""

from __future__ import annotations

from hsae.extract.progress import extraction_meter


def test_a_callback_gets_image_counts_and_the_final_total():
    calls = []
    with extraction_meter(10, 2, lambda done, total: calls.append((done, total))) as meter:
        meter.advance(3, 300)
        meter.advance(1, 100)
        meter.finish(7)  # two listed files were unreadable
    assert calls == [(5, 10), (6, 10), (6, 7)]
    assert meter.tokens == 400


def test_the_default_bar_shows_image_and_token_rates(capsys):
    with extraction_meter(4, 0, None) as meter:
        meter.advance(4, 1000)
        meter.finish(4)
    err = " ".join(capsys.readouterr().err.split())
    assert "4/4" in err and "images/s" in err and "tokens/s" in err
