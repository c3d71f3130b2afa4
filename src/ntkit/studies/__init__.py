"""Studies: theory and sampled networks side by side, with figures and reports.

``width_study(config)`` is the main job behind ``ntkit width-study`` and ``ntkit demo``;
``first_order_validation`` drives ``make validate``'s convergence tables.
"""

from .config import DEMO_CONFIG, INPUT_SETS, WidthStudyConfig, load_config
from .figures import FIGURES, draw_figures
from .report import scale_rows, scan_rows, summary_rows, write_report
from .run import run_width_study
from .width_study import agreement, width_study

__all__ = ["DEMO_CONFIG", "INPUT_SETS", "WidthStudyConfig", "load_config", "width_study", "agreement", "draw_figures",
           "FIGURES", "write_report", "summary_rows", "scale_rows", "scan_rows", "run_width_study"]

