"""empirical_ntk against explicit Jacobians J J^T (jax.jacobian of the whole batch), between its
two methods, against the infinite-width NTK (mean of random wide MLPs), and the PyTorch adapter."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkit
from ntkit.empirical import choose_method, empirical_ntk
from ntkit.training import Network


def explicit_ntk(f, params, x1, x2):
    """sum_p J1_p J2_p^T from the full-batch Jacobian (m, C, P) of jax.jacobian: the reference."""
    def flat(x):
        out = f(params, x)
        jac = jax.jit(jax.jacobian(f))(params, x)
        return jnp.concatenate([leaf.reshape(out.shape + (-1,)) for leaf in jax.tree_util.tree_leaves(jac)], axis=-1)
    j1, j2 = flat(x1), flat(x2)
    if j1.ndim == 2:
        return np.asarray(j1 @ j2.T)
    return np.asarray(jnp.einsum("icp,jdp->ijcd", j1, j2))


def mlp_model(key, sizes=(5, 16, 16, 1)):
    keys = jax.random.split(key, len(sizes))
    params = [{"w": jax.random.normal(k, (a, b)), "b": 0.3 * jax.random.normal(jax.random.fold_in(k, 1), (b,))}
              for k, a, b in zip(keys, sizes[:-1], sizes[1:])]

    def f(p, x):
        h = x
        for i, layer in enumerate(p):
            h = h @ layer["w"] / jnp.sqrt(layer["w"].shape[0]) + layer["b"][None, :]
            if i < len(p) - 1:
                h = jax.nn.gelu(h)
        return h[:, 0] if h.shape[1] == 1 else h
    return f, params


def cnn_model(key):
    """A small 1-D CNN: conv (3 channels, width 3) -> tanh -> conv -> global mean -> dense (2 outputs)."""
    k1, k2, k3 = jax.random.split(key, 3)
    params = {"c1": jax.random.normal(k1, (3, 2, 3)), "c2": jax.random.normal(k2, (4, 3, 3)), "d": jax.random.normal(k3, (4, 2))}

    def f(p, x):  # x: (m, 2 channels, 10 positions)
        dn = ("NCH", "OIH", "NCH")
        h = jnp.tanh(jax.lax.conv_general_dilated(x, p["c1"], (1,), "SAME", dimension_numbers=dn) / jnp.sqrt(6.0))
        h = jax.nn.relu(jax.lax.conv_general_dilated(h, p["c2"], (1,), "SAME", dimension_numbers=dn) / 3.0)
        return h.mean(axis=2) @ p["d"] / 2.0
    return f, params


@pytest.mark.parametrize("method", ["jacobian", "ntvp", "structured"])
def test_mlp_equals_explicit_jacobian_product(method):
    f, params = mlp_model(jax.random.PRNGKey(0))
    x1 = jax.random.normal(jax.random.PRNGKey(1), (7, 5))
    x2 = jax.random.normal(jax.random.PRNGKey(2), (4, 5))
    ref = explicit_ntk(f, params, x1, x2)
    got = empirical_ntk(f, params, x1, x2, method=method)
    assert got.shape == (7, 4)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10 * np.abs(ref).max())
    sym = empirical_ntk(f, params, x1, method=method)
    np.testing.assert_allclose(sym, explicit_ntk(f, params, x1, x1), rtol=0, atol=1e-10 * np.abs(ref).max())


@pytest.mark.parametrize("method", ["jacobian", "ntvp", "structured"])
def test_cnn_and_multi_output_full_and_trace(method):
    f, params = cnn_model(jax.random.PRNGKey(3))
    x1 = jax.random.normal(jax.random.PRNGKey(4), (5, 2, 10))
    x2 = jax.random.normal(jax.random.PRNGKey(5), (3, 2, 10))
    ref = explicit_ntk(f, params, x1, x2)
    assert ref.shape == (5, 3, 2, 2)
    got = empirical_ntk(f, params, x1, x2, method=method)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10 * np.abs(ref).max())
    tr = empirical_ntk(f, params, x1, x2, method=method, trace=True)
    np.testing.assert_allclose(tr, np.trace(ref, axis1=2, axis2=3), rtol=0, atol=1e-10 * np.abs(ref).max())


def test_multi_output_mlp_both_methods_agree_and_block_size_does_not_matter():
    f, params = mlp_model(jax.random.PRNGKey(6), sizes=(3, 12, 4))
    x = jax.random.normal(jax.random.PRNGKey(7), (9, 3))
    ref = explicit_ntk(f, params, x, x)
    n_params = sum(leaf.size for leaf in jax.tree_util.tree_leaves(params))
    blocks_of_4 = 2 * 4 * n_params * 8 * 4  # two Jacobian blocks of 4 samples, 4 outputs, float64
    for method, memory in (("jacobian", 2**30), ("jacobian", blocks_of_4), ("ntvp", blocks_of_4), ("structured", 2**30),
                           ("structured", 2000 * 8), ("auto", 2**30)):
        got = empirical_ntk(f, params, x, method=method, max_memory=memory)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10 * np.abs(ref).max())
    assert choose_method(f, params, x[:1], 4) == "structured"


def test_structured_factorizes_dense_weights_only_when_used_once():
    """MLP weights are factorized (biases keep Jacobians); a weight used twice, or transposed,
    falls back to its Jacobian, and the kernel stays exact."""
    from ntkit.empirical import _structured_kernel

    f, params = mlp_model(jax.random.PRNGKey(0))
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 5))
    kernel = _structured_kernel(f, params, x[:1])
    leaves = jax.tree_util.tree_leaves(params)
    assert sorted(p.leaf for p in kernel.s.products) == [k for k, a in enumerate(leaves) if a.ndim == 2]
    assert kernel.pair_cost(1) < sum(a.size for a in leaves)  # cheaper than contracting Jacobians

    p = {"w": jax.random.normal(jax.random.PRNGKey(2), (5, 6)), "v": jax.random.normal(jax.random.PRNGKey(3), (6, 2))}
    shared = lambda p, x: jnp.tanh(x @ p["w"]) @ p["v"] + jnp.sum(x @ p["w"], axis=1, keepdims=True)  # noqa: E731
    transposed = lambda p, x: (p["v"].T @ jnp.tanh(p["w"].T @ x.T)).T  # noqa: E731
    for g, factorized in ((shared, {0}), (transposed, set())):  # leaves in key order: v, w
        assert _structured_kernel(g, p, x[:1]).s.factorized == factorized
        ref = explicit_ntk(g, p, x, x)
        np.testing.assert_allclose(empirical_ntk(g, p, x, method="structured"), ref, rtol=0, atol=1e-10 * np.abs(ref).max())


def test_equinox_model():
    eqx = pytest.importorskip("equinox")
    model = eqx.nn.MLP(in_size=3, out_size=2, width_size=8, depth=2, activation=jax.nn.tanh, key=jax.random.PRNGKey(8))
    params, static = eqx.partition(model, eqx.is_array)
    f = lambda p, x: jax.vmap(eqx.combine(p, static))(x)  # noqa: E731
    x = jax.random.normal(jax.random.PRNGKey(9), (6, 3))
    ref = explicit_ntk(f, params, x, x)
    for method in ("jacobian", "ntvp", "structured"):
        np.testing.assert_allclose(empirical_ntk(f, params, x, method=method), ref, rtol=0, atol=1e-10 * np.abs(ref).max())


def test_bad_input_errors():
    f, params = mlp_model(jax.random.PRNGKey(0))
    x = jnp.ones((3, 5))
    with pytest.raises(ValueError, match="unknown method"):
        empirical_ntk(f, params, x, method="magic")
    with pytest.raises(ValueError, match="NaN"):
        empirical_ntk(f, params, x.at[0, 0].set(jnp.nan))
    with pytest.raises(ValueError, match="per-sample shape"):
        empirical_ntk(f, params, x, jnp.ones((2, 4)))
    with pytest.raises(MemoryError, match="max_memory"):
        empirical_ntk(f, params, x, max_memory=8)
    with pytest.raises(ValueError, match=r"\(m,\) or \(m, C\)"):
        empirical_ntk(lambda p, x: f(p, x)[:, None, None], params, x)


def _mean_ntk_vs_theory(width, n_networks, seed):
    mlp = ntkit.MLP(depth=3, activation="tanh", c_b=0.1, c_w=1.5, lambda_b=0.1, lambda_w=1.5)
    x = np.array([[1.0, 0.0, 0.5], [0.3, -1.2, 0.0], [0.0, 0.7, 0.7]])
    net = Network(mlp, n_in=3, width=width)
    kernels = np.stack([net.ntk(net.init(jax.random.PRNGKey(seed + i)), x) for i in range(n_networks)])
    theory = ntkit.infinite_width(mlp, x, layers="last")["theta"].values[0]
    return kernels.mean(0), kernels.std(0, ddof=1) / np.sqrt(n_networks), theory


def test_mean_over_random_mlps_approaches_infinite_width():
    """NTK parameterization normalization: <Theta_emp> = theta + O(1/n), within 4 stderr + 2 theta/n."""
    mean, stderr, theory = _mean_ntk_vs_theory(width=256, n_networks=40, seed=100)
    assert np.all(np.abs(mean - theory) < 4 * stderr + 2 * np.abs(theory) / 256)
    assert np.all(stderr < 0.05 * np.abs(theory).max())  # the check is not vacuous


def test_torch_adapter_equals_jax_on_the_same_weights():
    torch = pytest.importorskip("torch")
    from ntkit.torch import empirical_ntk as torch_ntk

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(4, 10), torch.nn.Tanh(), torch.nn.Linear(10, 10), torch.nn.Tanh(),
                                 torch.nn.Linear(10, 3)).double()
    layers = [m for m in module if isinstance(m, torch.nn.Linear)]
    params = [{"w": jnp.asarray(l.weight.detach().numpy().T), "b": jnp.asarray(l.bias.detach().numpy())} for l in layers]

    def f(p, x):
        h = x
        for i, layer in enumerate(p):
            h = h @ layer["w"] + layer["b"][None, :]
            h = jnp.tanh(h) if i < len(p) - 1 else h
        return h
    x1 = np.random.default_rng(0).normal(size=(6, 4))
    x2 = np.random.default_rng(1).normal(size=(5, 4))
    ref = empirical_ntk(f, params, x1, x2)
    for method in ("jacobian", "ntvp", "auto"):
        got = torch_ntk(module, torch.from_numpy(x1), torch.from_numpy(x2), method=method)
        assert got.shape == (6, 5, 3, 3)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10 * np.abs(ref).max())
    np.testing.assert_allclose(torch_ntk(module, torch.from_numpy(x1), trace=True, max_memory=2 * 3 * 193 * 8 * 2),
                               np.trace(empirical_ntk(f, params, x1), axis1=2, axis2=3), rtol=0, atol=1e-10 * np.abs(ref).max())
