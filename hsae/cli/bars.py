"""The console every command prints to, and its live progress bars."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(soft_wrap=True)  # messages keep paths on one line (no hard wrapping)


def progress_bar() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(bar_width=12), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("{task.fields[figures]}"), console=console, transient=False)


def bar_callback(description: str):
    """``progress(done, total)`` drawing a live bar, opened at the first call and closed at done == total."""
    bar, task = None, None

    def on_progress(done: int, total: int) -> None:
        nonlocal bar, task
        if bar is None:
            bar = progress_bar()
            task = bar.add_task(description, total=total, figures="")
            bar.start()
        bar.update(task, completed=done, total=total)
        if done >= total:
            bar.stop()

    return on_progress
