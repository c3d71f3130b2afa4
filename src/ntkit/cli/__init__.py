"""The ``ntkit`` command line: the only part of ntkit that parses arguments or prints.

One module per command group; each registers its commands on the shared Typer ``app``.
"""
from ._app import app
from . import critical  # noqa: F401  (registers ntkit critical)
from . import demo  # noqa: F401  (registers ntkit demo)
from . import dynamics  # noqa: F401  (registers ntkit dynamics-study)
from . import kernels  # noqa: F401  (registers ntkit kernels)
from . import sample  # noqa: F401  (registers ntkit sample)
from . import study  # noqa: F401  (registers ntkit width-study, show, plot)
from . import validate  # noqa: F401  (registers ntkit validate)

__all__ = ["app"]
