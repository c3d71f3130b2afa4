"""Printing for the command line: a console, one-line errors (exit code 2) and warnings, matrix tables."""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import NoReturn

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["console", "fail", "user_errors", "matrix_table", "USAGE_ERROR"]

USAGE_ERROR = 2
console = Console()
_errors = Console(stderr=True)


def fail(message: str) -> NoReturn:
    """Print ``error: message`` in red on one line to stderr and exit with code 2."""
    _errors.print(f"[bold red]error:[/] {escape(' '.join(str(message).split()))}", soft_wrap=True, highlight=False)
    raise typer.Exit(code=USAGE_ERROR)


@contextmanager
def user_errors():
    """Turn the library's input errors (bad values, shapes, files) into :func:`fail`, and its warnings
    (e.g. reduced accuracy) into ``warning: message`` lines on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            yield
        except (ValueError, TypeError, OSError, ArithmeticError) as exc:
            fail(str(exc))
        finally:
            for warning in caught:
                if issubclass(warning.category, UserWarning):
                    _errors.print(f"[bold yellow]warning:[/] {escape(' '.join(str(warning.message).split()))}", soft_wrap=True, highlight=False)
                else:
                    warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)


def integer_list(text: str, option: str) -> list[int]:
    """``"8,16,32"`` as [8, 16, 32]; anything else is an error naming ``option``."""
    items = [item.strip() for item in text.split(",")]
    if not all(item.isdigit() for item in items):
        raise ValueError(f"{option} must be comma-separated non-negative integers, got {text!r}")
    return [int(item) for item in items]


def matrix_table(title: str, values: np.ndarray, max_size: int = 8) -> Table:
    """An m x m matrix as a table, showing at most ``max_size`` rows and columns."""
    m = values.shape[0]
    shown = min(m, max_size)
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("", style="dim", justify="right")
    for b in range(shown):
        table.add_column(str(b), justify="right")
    if m > shown:
        table.add_column("…")
    for a in range(shown):
        cells = [f"{v:.6g}" for v in values[a, :shown]]
        table.add_row(str(a), *cells, *(["…"] if m > shown else []))
    if m > shown:
        table.add_row("…", *(["…"] * (shown + 1)))
    if m > shown:
        table.caption = f"first {shown} of {m} inputs"
    return table
