"""The MLP description, input validation and hidden widths."""

import json

import numpy as np
import pytest

from ntkit import MLP
from ntkit.activations import get_activation
from ntkit.network import hidden_widths, validate_inputs


def test_scalar_hyperparameters_apply_to_every_layer():
    mlp = MLP(depth=3, activation="gelu", c_b=0.1, c_w=1.5, lambda_b=0.2, lambda_w=3.0)
    for layer in (1, 2, 3):
        assert (mlp.c_b_at(layer), mlp.c_w_at(layer), mlp.lambda_b_at(layer), mlp.lambda_w_at(layer)) == (0.1, 1.5, 0.2, 3.0)
    assert mlp.activation.name == "gelu"


def test_per_layer_hyperparameters():
    mlp = MLP(depth=3, activation="tanh", c_b=[0.0, 0.1, 0.2], c_w=(1.0, 2.0, 3.0), lambda_w=np.array([1.0, 0.5, 0.25]))
    assert [mlp.c_b_at(l) for l in (1, 2, 3)] == [0.0, 0.1, 0.2]
    assert [mlp.c_w_at(l) for l in (1, 2, 3)] == [1.0, 2.0, 3.0]
    assert [mlp.lambda_w_at(l) for l in (1, 2, 3)] == [1.0, 0.5, 0.25]
    with pytest.raises(ValueError, match=r"layer must be in 1\.\.3"):
        mlp.c_w_at(0)
    with pytest.raises(ValueError, match=r"layer must be in 1\.\.3"):
        mlp.c_w_at(4)


def test_describe_is_json_serialisable_and_complete():
    mlp = MLP(depth=2, activation="leaky_relu(0.2)", c_b=0.1, c_w=[1.0, 2.0])
    description = json.loads(json.dumps(mlp.describe()))
    assert description == {
        "depth": 2,
        "activation": "leaky_relu(0.2)",
        "c_b": [0.1, 0.1],
        "c_w": [1.0, 2.0],
        "lambda_b": [1.0, 1.0],
        "lambda_w": [1.0, 1.0],
    }


def test_activation_objects_and_callables_are_accepted():
    act = get_activation("erf")
    assert MLP(depth=1, activation=act).activation is act
    assert MLP(depth=1, activation=lambda z: z * z).activation.fn(3.0) == 9.0


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(depth=0), ValueError, "depth must be an integer >= 1"),
        (dict(depth=-2), ValueError, "depth must be an integer >= 1"),
        (dict(depth=2.5), ValueError, "depth must be an integer >= 1"),
        (dict(depth=True), ValueError, "depth must be an integer >= 1"),
        (dict(depth=2, c_w=0.0), ValueError, "c_w must be > 0"),
        (dict(depth=2, c_w=[1.0, -1.0]), ValueError, "c_w must be > 0"),
        (dict(depth=2, c_b=-0.5), ValueError, "c_b is a variance"),
        (dict(depth=2, lambda_w=-1.0), ValueError, "lambda_w is a variance"),
        (dict(depth=2, c_w=float("nan")), ValueError, "c_w must be finite"),
        (dict(depth=2, c_b=float("inf")), ValueError, "c_b must be finite"),
        (dict(depth=3, c_w=[1.0, 2.0]), ValueError, "sequence of 3 values"),
        (dict(depth=2, c_w=[[1.0, 2.0]]), ValueError, "one per layer"),
        (dict(depth=2, c_b="1.0"), ValueError, "c_b must be a number"),  # a typo, not a variance
        (dict(depth=2, c_w=True), ValueError, "c_w must be a number"),
        (dict(depth=2, lambda_b=None), ValueError, "lambda_b must be a number"),
        (dict(depth=2, activation="nope"), ValueError, "unknown activation"),
        (dict(depth=2, activation=3), TypeError, "activation must be"),
    ],
)
def test_bad_networks_raise(kwargs, error, message):
    with pytest.raises(error, match=message):
        MLP(**kwargs)


def test_validate_inputs():
    x = validate_inputs([[1, 2], [3, 4]])
    assert x.dtype == np.float64 and x.shape == (2, 2)
    with pytest.raises(ValueError, match=r"got shape \(3,\)"):
        validate_inputs(np.ones(3))
    with pytest.raises(ValueError, match=r"row 1, column 0"):
        validate_inputs([[1.0, 2.0], [np.inf, 0.0]])
    with pytest.raises(ValueError, match="at least one input"):
        validate_inputs(np.ones((2, 0)))
    with pytest.raises(TypeError, match="numeric"):
        validate_inputs(np.array([[object()]]))
    with pytest.raises(ValueError, match="^inputs must"):
        validate_inputs(np.ones((2, 2, 2)), name="inputs")


def test_hidden_widths():
    assert hidden_widths(16, 4) == (16, 16, 16)
    assert hidden_widths([8, 16], 3) == (8, 16)
    assert hidden_widths(5, 1) == ()
    with pytest.raises(ValueError, match="give 2 hidden widths"):
        hidden_widths([8], 3)
    for bad in ([0, 4], [4.5, 4], [-1, 4], [True, 4], ["8", 4]):  # no bools or strings passed off as widths
        with pytest.raises(ValueError, match="positive integers"):
            hidden_widths(bad, 3)
    with pytest.raises(ValueError, match="positive integers"):
        hidden_widths(0, 3)
