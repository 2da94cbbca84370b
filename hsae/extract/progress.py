"""Progress of an extraction: a rich bar with images/s and tokens/s, or a caller's callback.

:func:`run_extraction` reports through an :class:`ExtractionMeter`. With no callback it shows
its own bar (on stderr); with a ``progress(done, total)`` callback (the toolkit's common
``Progress`` type) the caller owns the display and only gets the image counts.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text

from hsae.interfaces.dataset import Progress as ProgressCallback


class _RatesColumn(ProgressColumn):
    """images/s and tokens/s over the images extracted in this session."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        fresh = task.completed - task.fields["first"]
        if elapsed <= 0 or fresh <= 0:
            return Text("– images/s  – tokens/s", style="progress.data.speed")
        return Text(f"{fresh / elapsed:,.1f} images/s  {task.fields['tokens'] / elapsed:,.0f} tokens/s", style="progress.data.speed")


class ExtractionMeter:
    """Counts images and tokens; forwards them to a callback or a rich bar."""

    def __init__(self, total: int, done: int, callback: ProgressCallback | None, bar: Progress | None) -> None:
        self.total, self.done, self.tokens = total, done, 0
        self.started = time.monotonic()
        self._callback, self._bar = callback, bar
        self._task = bar.add_task("extracting", total=total, completed=done, first=done, tokens=0) if bar else None

    def advance(self, images: int, tokens: int) -> None:
        self.done += images
        self.tokens += tokens
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, tokens=self.tokens)
        if self._callback is not None:
            self._callback(self.done, self.total)

    def finish(self, total: int) -> None:
        """The dataset is exhausted: ``total`` is the real number of images (unreadable ones left out)."""
        self.total = total
        if self._bar is not None:
            self._bar.update(self._task, total=total, completed=self.done)
        if self._callback is not None:
            self._callback(self.done, total)


@contextmanager
def extraction_meter(total: int, done: int, callback: ProgressCallback | None) -> Iterator[ExtractionMeter]:
    """A meter for ``total`` images of which ``done`` are already in the store."""
    if callback is not None:
        yield ExtractionMeter(total, done, callback, None)
        return
    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
               _RatesColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        yield ExtractionMeter(total, done, None, bar)
