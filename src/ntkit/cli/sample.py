"""``ntkit sample``: Monte-Carlo estimates from random networks, with a progress bar and a summary."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Optional

import typer
import xarray as xr
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..results import require_writable, save
from ..sampling import sample as sample_networks
from ._app import app
from ._console import console, fail, integer_list, user_errors
from ._inputs import load_inputs
from ._network import CB, CW, Activation, Critical, Depth, Inputs, LambdaB, LambdaW, build_mlp

SUMMARY = ("K", "theta", "V", "D", "F", "A", "B")


def parse_width(text: str) -> int | tuple[int, ...]:
    """``32`` (all hidden layers) or ``32,64,16`` (n_1..n_(L-1))."""
    with user_errors():
        values = integer_list(text, "--width")
    return values[0] if len(values) == 1 else tuple(values)


def summary_table(ds: xr.Dataset) -> Table:
    """Every estimate at the first input (a1 = .. = a4 = 0), one column per layer, with stderr."""
    table = Table(title=f"estimates at input 0 ({ds.attrs['n_networks']:,} networks, seed {ds.attrs['seed']}); "
                  "V..B are n_(l-1) x cumulant", title_justify="left", show_edge=False)
    table.add_column("", style="bold")
    layers = ds["layer"].values
    for layer in layers:
        table.add_column(f"layer {layer}", justify="right")
    first = ds.isel(a1=0, a2=0, a3=0, a4=0)
    for name in (n for n in SUMMARY + ("K1", "theta1") if n in ds):
        cells = (f"{float(v):.4g} ± {float(e):.1g}" for v, e in zip(first[name].values, first[f"{name}_stderr"].values))
        table.add_row(name, *cells)
    return table


@app.command("sample")
def sample_command(
    inputs: Inputs = None,
    activation: Activation = "relu",
    depth: Depth = 3,
    c_b: CB = None,
    c_w: CW = None,
    use_critical: Critical = False,
    lambda_b: LambdaB = 1.0,
    lambda_w: LambdaW = 1.0,
    width: str = typer.Option("16", "--width", help="Hidden width n, or n_1,...,n_(L-1)."),
    output_width: int = typer.Option(4, "--output-width", help="Output neurons (>= 2)."),
    statistics: str = typer.Option("all", "--statistics", help="all: K, theta and V..B; mean: K and theta only (theta from "
                                   "--output-width neurons per layer by backpropagation: much faster at large width)."),
    networks: int = typer.Option(10_000, "--networks", help="Number of random networks."),
    seed: int = typer.Option(0, "--seed", help="Seed; network k uses the key fold_in(PRNGKey(seed), k)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Networks per compiled call (does not change the result)."),
    workers: int = typer.Option(1, "--workers", help="Local worker processes (does not change the result)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Threads computing networks in this process; default: one per "
                                          "available core (does not change the result)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address, e.g. tcp://host:8786."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Save progress here; rerun the same command to resume."),
    dtype: str = typer.Option("float64", "--dtype", help="float64 or float32 for the networks (estimates are float64)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the estimates (netCDF-4) here."),
) -> None:
    """Estimate K, theta and n x (V, D, F, A, B) (or, with --statistics mean, K and theta) per layer from random networks, with standard errors."""
    hidden = parse_width(width)
    with user_errors(), ExitStack() as stack:
        if out is not None:
            require_writable(out)
        x = load_inputs(inputs)
        mlp = build_mlp(activation, depth, c_b, c_w, use_critical, lambda_b, lambda_w)
        executor = None
        if scheduler is not None:
            try:
                from distributed import Client
            except ImportError:
                fail("--scheduler needs the 'distributed' package (pip install distributed)")
            client = stack.enter_context(Client(scheduler))
            executor = client.get_executor()
        columns = (TextColumn("networks"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                   TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
        state = {}

        def report(done: int, total: int) -> None:
            if not state:  # first call: the arguments are valid, show the bar
                state["bar"] = bar = stack.enter_context(Progress(*columns, console=console))
                state["task"] = bar.add_task("sample", total=total, rate="")
                state["start"] = (bar.get_time(), done)
            bar, (t0, done0) = state["bar"], state["start"]
            elapsed = bar.get_time() - t0
            rate = f"{(done - done0) / elapsed:,.0f} networks/s" if elapsed > 0 and done > done0 else ""
            bar.update(state["task"], completed=done, total=total, rate=rate)

        ds = sample_networks(mlp, x, hidden, networks, seed=seed, batch_size=batch_size, output_width=output_width,
                             statistics=statistics, dtype=dtype, checkpoint=checkpoint, workers=workers, threads=threads, executor=executor,
                             progress=report)
    console.print(summary_table(ds))
    if out is not None:
        with user_errors():
            save(ds, out)
        console.print(f"wrote {out} (variables {', '.join(ds.data_vars)})")
