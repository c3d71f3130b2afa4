"""Run a width study and write everything it produces into its output directory."""

from __future__ import annotations

from pathlib import Path

from ..results import save
from ..sampling import remove_checkpoints
from .config import WidthStudyConfig
from .figures import draw_figures
from .report import write_report
from .width_study import Progress, width_study

__all__ = ["run_width_study"]


def run_width_study(config: WidthStudyConfig, progress: Progress | None = None):
    """Run the study and write ``<output>/study.nc``, ``figures/*.png|svg``, ``report.md|html``.

    Monte-Carlo checkpoints go to ``<output>/checkpoints`` so that a rerun of an interrupted
    study resumes; once everything is written they are removed (a finished study is recomputed
    by the code that reruns it). Returns (dataset, {name: path}) for everything written.
    """
    out = Path(config.output)
    ds = width_study(config, checkpoint_dir=out / "checkpoints", progress=progress)
    paths = {"data": save(ds, out / "study.nc")}
    figures = draw_figures(ds, out / "figures")
    paths.update(figures)
    paths["report_md"], paths["report_html"] = write_report(ds, out, figures)
    remove_checkpoints(out / "checkpoints")
    return ds, paths
