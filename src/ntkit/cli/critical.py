"""``ntkit critical``: the critical initialization (C_b, C_W) of an activation."""

from __future__ import annotations

import math

import typer
from rich.markup import escape
from rich.table import Table

from ..criticality import critical as find_critical
from ._app import app
from ._console import console, user_errors


@app.command()
def critical(activation: str = typer.Argument(..., help="Activation name, e.g. gelu, tanh, relu, leaky_relu(0.2).")) -> None:
    """C_b, C_W with chi_parallel = chi_perp = 1 at the fixed point K* (PDLT ch. 5)."""
    with user_errors():
        point = find_critical(activation)
    console.print(f"critical initialization of [bold]{escape(activation)}[/]")
    table = Table(show_header=False, show_edge=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    k_star = "every K" if math.isnan(point.K_star) else f"{point.K_star:.10g}"
    for name, value in (("c_b", point.c_b), ("c_w", point.c_w)):
        table.add_row(name, f"{value:.10g}")
    table.add_row("K*", k_star)
    for name, value in (("chi_parallel", point.chi_parallel), ("chi_perp", point.chi_perp)):
        table.add_row(name, f"{value:.10g}")
    table.add_row("kind", point.kind)
    console.print(table)
