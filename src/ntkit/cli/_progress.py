"""Rich progress bars for long library calls that report ``progress(step, done, total)``."""

from __future__ import annotations

from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ._console import console

__all__ = ["step_progress"]


@contextmanager
def step_progress():
    """Yield a callback ``(step, done, total)`` that shows one bar per named step (rate, ETA)."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        tasks: dict[str, int] = {}
        started: dict[str, float] = {}

        def report(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(step, total=total, rate="")
                started[step] = bar.get_time()
            elapsed = bar.get_time() - started[step]
            rate = f"{done / elapsed:,.0f}/s" if elapsed > 0 and total > 1 else ""
            bar.update(tasks[step], completed=done, total=total, rate=rate)

        yield report
