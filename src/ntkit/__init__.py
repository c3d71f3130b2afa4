"""ntkit: neural tangent kernels at finite width."""
import jax as _jax

_jax.config.update("jax_enable_x64", True)

from . import activations
from .network import MLP

__all__ = ["MLP", "activations"]
__version__ = "0.1.0"
