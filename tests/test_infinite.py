"""Infinite-width K and Theta against results that do not come from ntkit's own integrals.

Oracles: plain linear algebra (linear activation, layer 1), the arc-cosine and arcsine recursions
written out here from the textbook formulas, scipy quadrature, and random networks sampled and
differentiated in this file (independently of ``ntkit.sampling``).
"""

import functools
import math
import os
import stat

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import ndtr as jndtr
from scipy import integrate
from scipy.special import erf, ndtr
from scipy.stats import norm

import ntkit
from ntkit import MLP, infinite_width
from ntkit.theory import infinite

X = np.array([[1.0, -0.5, 0.3, 0.8], [0.2, 1.1, -0.7, 0.4], [-0.9, 0.3, 0.6, -1.2]])


def _gram(x):
    return x @ x.T / x.shape[1]


def _kernels(ds):
    return ds["K"].values, ds["theta"].values


# ---------------------------------------------------------------------------------------------- exact recursions


def test_linear_network_is_linear_algebra():
    c_b, c_w, lam_b, lam_w = [0.1, 0.2, 0.3, 0.05], [1.0, 2.0, 0.5, 1.3], [0.5, 1.0, 0.2, 0.7], [1.5, 0.3, 2.0, 1.1]
    mlp = MLP(depth=4, activation="linear", c_b=c_b, c_w=c_w, lambda_b=lam_b, lambda_w=lam_w)
    K_got, T_got = _kernels(infinite_width(mlp, X))
    K = c_b[0] + c_w[0] * _gram(X)
    T = lam_b[0] + lam_w[0] * _gram(X)
    for l in range(4):
        if l:
            K, T = c_b[l] + c_w[l] * K, lam_b[l] + lam_w[l] * K + c_w[l] * T  # sigma(z) = z: S = K, P = 1
        np.testing.assert_allclose(K_got[l], K, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(T_got[l], T, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu", "erf", "softplus"])
def test_layer_one_is_exact(activation):
    mlp = MLP(depth=2, activation=activation, c_b=0.3, c_w=1.7, lambda_b=0.4, lambda_w=2.5)
    K, T = _kernels(infinite_width(mlp, X, layers=[1]))
    np.testing.assert_allclose(K[0], 0.3 + 1.7 * _gram(X), rtol=1e-15)
    np.testing.assert_allclose(T[0], 0.4 + 2.5 * _gram(X), rtol=1e-15)


def _relu_step(K):
    """Cho & Saul (2009): <relu relu> = s (sin t + (pi - t) cos t) / 2pi, <relu' relu'> = (pi - t) / 2pi."""
    s = np.sqrt(np.outer(np.diag(K), np.diag(K)))
    t = np.arccos(np.clip(K / s, -1.0, 1.0))
    return s * (np.sin(t) + (np.pi - t) * np.cos(t)) / (2 * np.pi), (np.pi - t) / (2 * np.pi)


def _erf_step(K):
    """Williams (1997): <erf erf> = (2/pi) asin(2K_ab / sqrt(q)), <erf' erf'> = (4/pi) / sqrt(q - 4 K_ab^2)."""
    q = np.outer(1 + 2 * np.diag(K), 1 + 2 * np.diag(K))
    return 2 / np.pi * np.arcsin(2 * K / np.sqrt(q)), 4 / np.pi / np.sqrt(q - 4 * K**2)


@pytest.mark.parametrize("activation, step", [("relu", _relu_step), ("erf", _erf_step)])
def test_closed_form_recursions(activation, step):
    c_b, c_w, lam_b, lam_w = 0.15, 1.8, 0.6, 1.4
    x = np.concatenate([X, -X[:1], 3 * X[1:2]])  # an antipodal and a collinear pair too
    K_got, T_got = _kernels(infinite_width(MLP(6, activation, c_b=c_b, c_w=c_w, lambda_b=lam_b, lambda_w=lam_w), x))
    K = c_b + c_w * _gram(x)
    T = lam_b + lam_w * _gram(x)
    for l in range(6):
        if l:
            S, P = step(K)
            K, T = c_b + c_w * S, lam_b + lam_w * S + c_w * P * T
        np.testing.assert_allclose(K_got[l], K, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(T_got[l], T, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------------------------- quadrature

NUMPY_ACTIVATIONS = {
    "relu": (lambda z: np.maximum(z, 0.0), lambda z: (z > 0).astype(float)),
    "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    "gelu": (lambda z: z * ndtr(z), lambda z: ndtr(z) + z * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)),
    "erf": (erf, lambda z: 2 / math.sqrt(math.pi) * np.exp(-z * z)),
}


def _quad_pair(f, g, cov):
    """<f(z_1) g(z_2)> by scipy.integrate (quad if z_1 = z_2, else dblquad in whitened coordinates)."""
    if cov[0, 1] == cov[0, 0] == cov[1, 1]:
        sd = math.sqrt(cov[0, 0])
        return integrate.quad(lambda u: f(sd * u) * g(sd * u) * norm.pdf(u), -40, 40, epsabs=1e-14, epsrel=1e-12)[0]
    L = np.linalg.cholesky(cov)

    def integrand(u2, u1):
        return f(L[0, 0] * u1) * g(L[1, 0] * u1 + L[1, 1] * u2) * math.exp(-0.5 * (u1 * u1 + u2 * u2)) / (2 * math.pi)

    return integrate.dblquad(integrand, -11, 11, -11, 11, epsabs=1e-13, epsrel=1e-12)[0]


@pytest.mark.parametrize("activation", ["tanh", "gelu"])
def test_layer_two_against_scipy_quadrature(activation):
    sigma, dsigma = NUMPY_ACTIVATIONS[activation]
    c_b, c_w, lam_b, lam_w = 0.2, 1.3, 0.5, 1.5
    x = X[:2]
    K_got, T_got = _kernels(infinite_width(MLP(2, activation, c_b=c_b, c_w=c_w, lambda_b=lam_b, lambda_w=lam_w), x))
    K1 = c_b + c_w * _gram(x)
    T1 = lam_b + lam_w * _gram(x)
    S = np.array([[_quad_pair(sigma, sigma, K1[np.ix_([a, b], [a, b])]) for b in range(2)] for a in range(2)])
    P = np.array([[_quad_pair(dsigma, dsigma, K1[np.ix_([a, b], [a, b])]) for b in range(2)] for a in range(2)])
    np.testing.assert_allclose(K_got[1], c_b + c_w * S, rtol=1e-10)
    np.testing.assert_allclose(T_got[1], lam_b + lam_w * S + c_w * P * T1, rtol=1e-10)


SATURATING = {
    "tanh": (np.tanh, lambda z: 1 / np.cosh(z) ** 2),
    "softplus": (lambda z: np.logaddexp(z, 0.0), lambda z: 0.5 * (1 + np.tanh(z / 2))),
}


def _quad_split(f, g, cov):
    """<f(z_1) g(z_2)> by nested scipy quad in whitened coordinates, split where z_1 and z_2 cross 0
    (where saturating activations turn over at large variance); 1-D for a singular cov."""
    l00, l10 = math.sqrt(cov[0, 0]), cov[0, 1] / math.sqrt(cov[0, 0])
    l11 = math.sqrt(max(cov[1, 1] - l10 * l10, 0.0))
    quad = functools.partial(integrate.quad, epsabs=1e-16, epsrel=1e-12, limit=400)

    def inner(u1):
        if l11 < 1e-7 * l00:
            return g(l10 * u1)
        cut = float(np.clip(-l10 * u1 / l11, -12, 12))
        return sum(quad(lambda u2: g(l10 * u1 + l11 * u2) * norm.pdf(u2), a, b)[0] for a, b in ((-12, cut), (cut, 12)))

    return sum(quad(lambda u1: f(l00 * u1) * inner(u1) * norm.pdf(u1), a, b)[0] for a, b in ((-12, 0), (0, 12)))


@pytest.mark.parametrize("activation", ["tanh", pytest.param("softplus", marks=pytest.mark.slow)])  # nested adaptive quadratures: 20-30 s each
def test_large_input_variances_against_scipy_quadrature(activation):
    """Inputs of variance 4.7 to 147 (unnormalised data): the Mehler series no longer converges and the
    2-D quadrature takes over. Every entry of layer 2 agrees with scipy's nested quadrature, and
    antipodal inputs through tanh stay exactly antipodal (Gauss–Hermite had errors up to 4e-2 and
    correlations of 1.04 here)."""
    sigma, dsigma = SATURATING[activation]
    x = np.array([[3.0, 2.0, -1.0], [-3.0, -2.0, 1.0], [4.0, -20.0, 5.0]])
    K_got, T_got = _kernels(infinite_width(MLP(2, activation, c_b=0.0, c_w=1.0, lambda_b=0.5), x))
    K1, T1 = _gram(x), 0.5 + _gram(x)
    for a, b in ((0, 0), (0, 1), (0, 2), (2, 2)):
        block = K1[np.ix_([a, b], [a, b])]
        S, P = _quad_split(sigma, sigma, block), _quad_split(dsigma, dsigma, block)
        np.testing.assert_allclose(K_got[1][a, b], S, rtol=1e-10)
        np.testing.assert_allclose(T_got[1][a, b], 0.5 + S + P * T1[a, b], rtol=1e-10)
    if activation == "tanh":
        np.testing.assert_allclose(K_got[1][0, 1], -K_got[1][0, 0], rtol=1e-13)


def test_explicit_node_count_agrees_with_default():
    mlp = MLP(4, "tanh", c_b=0.1, c_w=1.5)
    default = infinite_width(mlp, X)
    fine = infinite_width(mlp, X, nodes=192)
    np.testing.assert_allclose(fine["K"].values, default["K"].values, rtol=1e-10)
    np.testing.assert_allclose(fine["theta"].values, default["theta"].values, rtol=1e-10)


# ---------------------------------------------------------------------------------------------- structure

MANY = np.random.default_rng(7).normal(size=(8, 5)) * np.array([[0.3], [1.0], [2.0], [0.7], [1.5], [0.1], [1.0], [3.0]])


@pytest.mark.parametrize("activation", ["relu", "leaky_relu(0.2)", "tanh", "gelu", "erf", "sin", "silu", "softplus"])
def test_symmetric_and_positive_semidefinite(activation):
    ds = infinite_width(MLP(4, activation, c_b=0.1, c_w=1.6, lambda_b=0.3, lambda_w=1.2), MANY)
    for name in ("K", "theta"):
        for gram in ds[name].values:
            np.testing.assert_array_equal(gram, gram.T)
            eigenvalues = np.linalg.eigvalsh(gram)
            assert eigenvalues.min() >= -1e-10 * eigenvalues.max(), (name, eigenvalues)
            assert np.all(np.isfinite(gram))


@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu"])
def test_duplicate_inputs_give_identical_rows(activation):
    x = np.concatenate([X, X[1:2]])
    ds = infinite_width(MLP(3, activation, c_b=0.1, c_w=1.5), x)
    for name in ("K", "theta"):
        values = ds[name].values
        np.testing.assert_allclose(values[:, 3, :], values[:, 1, :], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(values[:, :, 3], values[:, :, 1], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("activation", ["relu", "gelu", "tanh"])
def test_zero_input_with_zero_bias_variance(activation):
    """x_0 = 0 and c_b = 0 make z_0 = 0 exactly in every layer. For relu and gelu sigma(0) = 0 and
    sigma'(0) = 1/2, <sigma'(z)> = 1/2 (gelu' = Phi(z) + z phi(z)), so K^(2)_0b = 0 and
    Theta^(2)_0b = lambda_b + c_w / 4 * lambda_b for every b."""
    x = np.concatenate([np.zeros((1, 4)), X])
    lam_b, c_w = 0.7, 1.9
    ds = infinite_width(MLP(3, activation, c_b=0.0, c_w=c_w, lambda_b=lam_b, lambda_w=1.0), x)
    K, T = _kernels(ds)
    assert np.all(np.isfinite(K)) and np.all(np.isfinite(T))
    np.testing.assert_allclose(K[:, 0, :], 0.0, atol=1e-15)
    if activation != "tanh":  # tanh'(0) = 1 but <tanh'(z)> has no closed form
        np.testing.assert_allclose(T[1, 0, :], lam_b * (1 + c_w / 4), rtol=1e-12)


def test_layers_selection():
    mlp = MLP(4, "tanh", c_b=0.1, c_w=1.5)
    full = infinite_width(mlp, X)
    assert list(full["layer"].values) == [1, 2, 3, 4]
    assert full["K"].dims == ("layer", "a1", "a2")
    last = infinite_width(mlp, X, layers="last")
    assert list(last["layer"].values) == [4]
    np.testing.assert_array_equal(last["K"].values[0], full["K"].values[3])
    some = infinite_width(mlp, X, layers=[3, 1])
    assert list(some["layer"].values) == [1, 3]
    assert ntkit.results.config_of(full)["mlp"]["activation"] == "tanh"
    np.testing.assert_array_equal(full["x"].values, X)  # the inputs travel as a variable, not as JSON
    assert full["x"].dims == ("a1", "input_dim") and "x" not in ntkit.results.config_of(full)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu(0.2)", "gelu", "erf"])
@pytest.mark.parametrize("m, n_0", [(21, 5), (32, 5), (7, 7), (21, 16), (21, 40)])  # row blocks of 8, 8 and 5; four of 8; one; 8, 8, 5
def test_closed_form_paths_agree(activation, m, n_0, monkeypatch):
    """Closed forms step whole Gram matrices kept by JAX when they are small and blocks of rows of
    the upper triangle, mirrored into the lower, when they are large; both give the same
    numbers, exactly symmetric, with equal rows for equal inputs, for every selection of layers. Three cases guard
    the input Gram both paths start from: on the 7 x 7 inputs JAX's own dot gives x x^T neither
    exactly symmetric nor with equal duplicate rows, and on the 21 x 16 inputs a general BLAS
    product with a copied x^T (gemm) is not symmetric; both are summed term by term instead, and
    the 21 x 40 inputs (more than SUMMED_GRAM_DIMS) take numpy's x @ x.T (BLAS syrk, mirrored)."""
    mlp = MLP(4, activation, c_b=0.1, c_w=1.6, lambda_b=0.3, lambda_w=1.2)
    x = np.random.default_rng(3).normal(size=(m, n_0))
    x[4] = x[1]  # a duplicate input
    selections = ("all", "last", [1, 3], [2])
    whole = {str(layers): infinite_width(mlp, x, layers=layers) for layers in selections}
    monkeypatch.setattr(infinite, "WHOLE_MATRIX_ENTRIES", 0)
    monkeypatch.setattr(infinite, "ROW_BLOCK", 8)
    for layers in selections:
        blocks = infinite_width(mlp, x, layers=layers)
        expected = whole["all"].sel(layer=blocks["layer"])
        for name in ("K", "theta"):
            np.testing.assert_allclose(blocks[name].values, expected[name].values, rtol=1e-14, atol=1e-15)
            np.testing.assert_allclose(whole[str(layers)][name].values, expected[name].values, rtol=1e-14, atol=1e-15)
            for gram in [*blocks[name].values, *whole[str(layers)][name].values]:
                np.testing.assert_array_equal(gram, gram.T)
                np.testing.assert_array_equal(gram[4], gram[1])


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "x, message",
    [
        (np.array([[1.0, np.nan], [0.0, 1.0]]), "NaN or inf"),
        (np.array([1.0, 2.0]), r"shape \(m, n_0\)"),
        (np.ones((2, 2, 2)), r"shape \(m, n_0\)"),
        (np.ones((0, 3)), "at least one input"),
        (np.array([["a", "b"]]), "numeric"),
        (np.ones((2, 2)) * 1j, "must be real"),
        (np.full((2, 2), 1e200), "K of layer 1 overflows"),
    ],
)
def test_bad_inputs_raise(x, message):
    with pytest.raises((ValueError, TypeError), match=message):
        infinite_width(MLP(2, "relu", c_w=2.0), x)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(depth=2, c_w=0.0), "c_w must be > 0"),
        (dict(depth=2, c_w=-1.0), "c_w must be > 0"),
        (dict(depth=0), "depth must be an integer >= 1"),
        (dict(depth=2, activation="swish-ish"), "unknown activation"),
        (dict(depth=2, c_b=-0.1), "c_b is a variance"),
        (dict(depth=3, c_w=[1.0, 2.0]), "one per layer"),
    ],
)
def test_bad_network_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MLP(**kwargs)


@pytest.mark.parametrize("layers", ["first", [0], [5], [], [2.9], [True], 2.0])
def test_bad_layer_selection_raises(layers):
    with pytest.raises(ValueError, match="layers"):
        infinite_width(MLP(4, "relu", c_w=2.0), X, layers=layers)


@pytest.mark.parametrize("depth", [2, 3])  # the closed-form check at the end, and the one before layer 3's quadrature
def test_activation_returning_nan_is_named(depth):
    with pytest.raises(ValueError, match="K of layer 2 is NaN: the activation is not finite"):
        infinite_width(MLP(depth, jnp.log), X)


@pytest.mark.parametrize("nodes", [0, 1, 7, True, 10.0, "10"])
def test_bad_quadrature_nodes_raise(nodes):
    """A handful of nodes gives kernels wrong by O(1) (nodes=1: 0.23 on a tanh net) with no sign of it."""
    with pytest.raises(ValueError, match="nodes"):
        infinite_width(MLP(3, "tanh", c_b=0.1), X, nodes=nodes)


# ---------------------------------------------------------------------------------------------- sampled networks
#
# Independent witness: random networks in the conventions of the theory specification
# (z^(l) = b + W sigma(z^(l-1)), W ~ N(0, c_w / n_(l-1)), b ~ N(0, c_b)), their NNGP estimate
# K_hat^(l)_ab = (1/n_l) sum_i z_ia z_ib on every layer, and the exact NTK of the output,
# Theta_hat_ab = (1/n_L) sum_i sum_params lambda_p dz_ia/dp dz_ib/dp, by the chain rule:
# with G^(l)_a = dz^(L)_a / dz^(l)_a (G^(L) = 1, G^(l) = G^(l+1) W^(l+1) diag sigma'(z^(l)_a)),
#     Theta_hat_ab = (1/n_L) sum_l [lambda_b + lambda_w h^(l-1)_a . h^(l-1)_b / n_(l-1)] tr(G^(l)_a G^(l)_b^T),
# h^(0) = x, h^(l) = sigma(z^(l)).

SAMPLER_ACTIVATIONS = {
    "relu": (lambda z: jnp.maximum(z, 0.0), lambda z: jnp.where(z > 0, 1.0, 0.0)),
    "tanh": (jnp.tanh, lambda z: 1 - jnp.tanh(z) ** 2),
    "gelu": (lambda z: z * jndtr(z), lambda z: jndtr(z) + z * jnp.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)),
}


def draw_networks(rng, n_networks, widths, c_b, c_w):
    """[(W, b)] per layer l = 1..L: W (B, n_l, n_(l-1)), b (B, 1, n_l)."""
    return [
        (
            rng.standard_normal((n_networks, widths[l], widths[l - 1])) * math.sqrt(c_w / widths[l - 1]),
            rng.standard_normal((n_networks, 1, widths[l])) * math.sqrt(c_b),
        )
        for l in range(1, len(widths))
    ]


@functools.partial(jax.jit, static_argnames="activation")
def network_kernels(params, x, activation, lambda_b, lambda_w):
    """(K_hat per layer (L, B, m, m), Theta_hat of the output (B, m, m)) for a batch of networks."""
    sigma, dsigma = SAMPLER_ACTIVATIONS[activation]
    h = jnp.broadcast_to(x, (params[0][0].shape[0],) + x.shape)
    inputs, preactivations = [h], []
    for W, b in params:
        z = jnp.einsum("bak,bik->bai", h, W) + b
        preactivations.append(z)
        h = sigma(z)
        inputs.append(h)
    K_hat = jnp.stack([jnp.einsum("bai,bci->bac", z, z) / z.shape[-1] for z in preactivations])

    def coefficient(l):  # lambda_b + lambda_w h^(l-1)_a . h^(l-1)_b / n_(l-1), for layer l = 1..L
        h_in = inputs[l - 1]
        return lambda_b + lambda_w * jnp.einsum("bai,bci->bac", h_in, h_in) / h_in.shape[-1]

    depth = len(params)
    n_out = params[-1][0].shape[1]
    theta = coefficient(depth)  # G^(L) is the identity: tr(1) / n_L = 1
    G = None
    for l in range(depth - 1, 0, -1):
        W_next = params[l][0]  # W^(l+1)
        slope = dsigma(preactivations[l - 1])[:, :, None, :]  # (B, m, 1, n_l)
        G = (W_next[:, None] if G is None else jnp.einsum("baij,bjk->baik", G, W_next)) * slope  # (B, m, n_L, n_l)
        theta = theta + coefficient(l) * jnp.einsum("baij,bcij->bac", G, G) / n_out
    return K_hat, theta


def test_sampler_ntk_equals_autodiff():
    """The chain-rule NTK above equals the parameter-space Jacobian contraction done by JAX."""
    rng = np.random.default_rng(3)
    widths = [4, 6, 5, 3]
    params = draw_networks(rng, 2, widths, c_b=0.3, c_w=1.7)
    lam_b, lam_w = 0.5, 1.5
    _, theta = network_kernels(params, X, "tanh", lam_b, lam_w)
    for net in range(2):
        flat = [(jnp.asarray(W[net]), jnp.asarray(b[net, 0])) for W, b in params]

        def output(p):
            h = jnp.asarray(X)
            for l, (W, b) in enumerate(p):
                z = h @ W.T + b[None, :]
                h = jnp.tanh(z) if l < len(p) - 1 else z
            return h  # (m, n_L)

        jac = jax.jacrev(output)(flat)
        expected = np.zeros((3, 3))
        for l, (dW, db) in enumerate(jac):
            lr_w = lam_w / widths[l]
            expected += lr_w * np.einsum("aiuv,ciuv->ac", dW, dW) + lam_b * np.einsum("aiu,ciu->ac", db, db)
        np.testing.assert_allclose(theta[net], expected / widths[-1], rtol=1e-12)


def sampled_means(activation, c_b, c_w, lambda_b, lambda_w, depth, width, n_out, n_networks, seed, chunk):
    """Means and standard errors over networks of K_hat (per layer) and of Theta_hat (output)."""
    rng = np.random.default_rng(seed)
    widths = [X.shape[1]] + [width] * (depth - 1) + [n_out]
    K_parts, T_parts = [], []
    for start in range(0, n_networks, chunk):
        params = draw_networks(rng, min(chunk, n_networks - start), widths, c_b, c_w)
        K_hat, theta = network_kernels(params, X, activation, lambda_b, lambda_w)
        K_parts.append(np.asarray(K_hat))
        T_parts.append(np.asarray(theta))
    K_all = np.concatenate(K_parts, axis=1)  # (L, N, m, m)
    T_all = np.concatenate(T_parts, axis=0)  # (N, m, m)
    stderr = lambda a, axis: a.std(axis=axis, ddof=1) / math.sqrt(a.shape[axis])  # noqa: E731
    return K_all.mean(1), stderr(K_all, 1), T_all.mean(0), stderr(T_all, 0)


# Allowance for the finite-width bias: E[K_hat] = K + K1/n + O(1/n^2), E[Theta_hat] = Theta + theta1/n + ...
# For these inputs and hyperparameters (depth 3) the first-order coefficients are |K1| <= 0.41 and
# |theta1| <= 0.28 (PDLT ch. 4 and 8 scaling: a few tenths times K and Theta for depth 3, as computed by
# ntkit.finite_width); FIRST_ORDER_BOUND = 1 covers them with room for the O(1/n^2) remainder.
FIRST_ORDER_BOUND = 1.0
SAMPLED_CONFIGS = {
    "relu": dict(activation="relu", c_b=0.1, c_w=1.8),
    "tanh": dict(activation="tanh", c_b=0.2, c_w=1.3),
    "gelu": dict(activation="gelu", c_b=0.17292239, c_w=1.98305826),
}


def _check_against_sampled(config, width, n_out, n_networks, seed, chunk):
    lam_b, lam_w, depth = 0.5, 1.5, 3
    K_mean, K_err, T_mean, T_err = sampled_means(
        **config, lambda_b=lam_b, lambda_w=lam_w, depth=depth, width=width, n_out=n_out, n_networks=n_networks, seed=seed, chunk=chunk
    )
    ds = infinite_width(MLP(depth, **config, lambda_b=lam_b, lambda_w=lam_w), X)
    allowance = FIRST_ORDER_BOUND / width
    K_dev = np.abs(K_mean - ds["K"].values)
    T_dev = np.abs(T_mean - ds["theta"].values[-1])
    assert np.all(K_dev <= 4 * K_err + allowance), (K_dev, K_err)
    assert np.all(T_dev <= 4 * T_err + allowance), (T_dev, T_err)
    # the test has power: the tolerance is a small fraction of the values it checks
    assert np.all(4 * T_err + allowance < 0.05 * np.abs(ds["theta"].values[-1]))


@pytest.mark.parametrize("name", sorted(SAMPLED_CONFIGS))
def test_sampled_networks_fast(name):
    """8000 networks of width 64 (64 outputs): 4 standard errors + 1/64 is 2-3.5% of Theta (measured)."""
    _check_against_sampled(SAMPLED_CONFIGS[name], width=64, n_out=64, n_networks=8000, seed=11, chunk=500)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gelu", "tanh"])
def test_sampled_networks_wide(name):
    """10^4 networks of width 512 (32 outputs), allowance 1/512."""
    _check_against_sampled(SAMPLED_CONFIGS[name], width=512, n_out=32, n_networks=10_000, seed=12, chunk=100)


def test_saved_results_have_ordinary_permissions_and_leave_no_scratch_file(tmp_path):
    """save writes a scratch file and renames it: the result gets the umask's permissions (a
    mkstemp scratch file would make it readable by its owner only) and nothing else is left."""
    umask = os.umask(0o022)
    try:
        path = ntkit.results.save(infinite_width(MLP(2, "relu", c_w=2.0), X), tmp_path / "k.nc")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.nc"]
