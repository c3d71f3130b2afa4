"""``ntkit demo``: a first look — infinite-width kernels of a critical GeLU network on the built-in inputs."""

from __future__ import annotations

from ..criticality import critical
from ..network import MLP
from ..theory import infinite_width
from ._app import app
from ._console import console
from ._inputs import EXAMPLE_INPUTS
from .kernels import show_last_layer


@app.command()
def demo() -> None:
    """Infinite-width K and theta of a depth-3 GeLU MLP at criticality on the built-in 4-input example."""
    c_b, c_w = critical("gelu")
    mlp = MLP(depth=3, activation="gelu", c_b=c_b, c_w=c_w)
    console.print("inputs (built-in example):")
    console.print(EXAMPLE_INPUTS)
    show_last_layer(infinite_width(mlp, EXAMPLE_INPUTS), mlp)
