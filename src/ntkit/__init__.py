"""ntkit: neural tangent kernels at finite width."""
import jax as _jax

_jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"

from . import activations
from . import dynamics
from .compilation_cache import enable_compilation_cache
from .criticality import critical
from .empirical import empirical_ntk
from .network import MLP
from .sampling import sample
from .theory import at_width, finite_width, infinite_width

__all__ = ["MLP", "activations", "at_width", "critical", "dynamics", "empirical_ntk", "enable_compilation_cache", "finite_width",
           "infinite_width", "sample"]
