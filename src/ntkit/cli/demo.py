"""``ntkit demo``: the width study on its embedded default configuration."""

from __future__ import annotations

import dataclasses
from typing import Optional

import typer

from ..studies import DEMO_CONFIG
from ._app import app
from .study import run_and_show


@app.command()
def demo(output: Optional[str] = typer.Option(None, "--out", help=f"Output directory (default: {DEMO_CONFIG.output}).")) -> None:
    """GeLU at criticality, depth 4: theory vs sampled networks at widths 8..128 (a few minutes on 2 cores).

    Rerunning an interrupted demo resumes from the Monte-Carlo checkpoints in <out>/checkpoints
    (removed once the study is written).
    """
    run_and_show(dataclasses.replace(DEMO_CONFIG, output=output or DEMO_CONFIG.output).validated())
