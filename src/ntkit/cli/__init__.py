"""The ``ntkit`` command line: the only part of ntkit that parses arguments or prints.

One module per command group; each registers its commands on the shared Typer ``app``.
"""
from ._app import app

__all__ = ["app"]
