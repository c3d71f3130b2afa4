"""Training dynamics and inference with a fixed kernel (NTK or NNGP).

* :mod:`.linalg` — checked kernel matrices, Cholesky with growing jitter, eigendecomposition;
* :mod:`.regression` — kernel ridge regression, GP posterior, the trained infinite-width ensemble;
* :mod:`.descent` — gradient flow and gradient descent predictions, loss curves, eigenmodes;
* :mod:`.spectrum` — condition number, effective dimension, participation ratio.

Conventions: the loss is L = 1/2 sum_a (f_a - y_a)^2 over the training set, and gradient flow
with learning rate eta moves the outputs by df/dt = -eta Theta (f - y).
"""

from .descent import (LearningRateError, check_learning_rate, gradient_descent, gradient_flow, mode_residuals,
                      mse_loss)
from .linalg import CholeskyFactor, SingularKernelError, cholesky_with_jitter
from .regression import GPPosterior, RegressionResult, gp_posterior, kernel_regression, trained_ensemble
from .spectrum import condition_number, effective_dimension, participation_ratio

__all__ = [
    "CholeskyFactor", "GPPosterior", "LearningRateError", "RegressionResult", "SingularKernelError",
    "check_learning_rate", "cholesky_with_jitter", "condition_number", "effective_dimension", "gp_posterior",
    "gradient_descent", "gradient_flow", "kernel_regression", "mode_residuals", "mse_loss", "participation_ratio",
    "trained_ensemble",
]
