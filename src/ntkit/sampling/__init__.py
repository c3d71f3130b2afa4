"""Random networks with exact per-layer preactivations and NTK; streaming Monte-Carlo estimators.

Never imports :mod:`ntkit.theory`: tests and studies hold the two against each other.
"""
from .checkpoint import remove_checkpoints
from .sample import sample

__all__ = ["remove_checkpoints", "sample"]
