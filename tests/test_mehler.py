"""Mehler series tables (``ntkit.mehler``) against 2-D quadrature, and the claim their length search rests on."""

import numpy as np
import pytest

from ntkit import mehler
from ntkit.activations import get_activation, names
from ntkit.gaussian import PiecewiseMonomial, expectation, product
from ntkit.theory.tables import integrands

SMOOTH = [name for name in names() if not isinstance(integrands(get_activation(name))[0], PiecewiseMonomial)]


def _mean_path_products(s, d):
    """Four (f, g, order) series of the mean path's M and N tables for sigma = s, sigma' = d."""
    return [(product(s, s, s), s, 0), (product(s, s), product(s, s), 0), (product(s, d), product(s, d), 0), (d, product(s, s, d), 0)]


def test_tables_for_bounded_correlations_are_shorter_and_agree_with_quadrature():
    """Tables for |rho| <= 0.8 (the gelu products of the mean path, variances 0.6 to 5.3) keep fewer
    terms than those for rho = 1 and their series equal graded Gauss–Legendre 2-D quadrature."""
    gelu = get_activation("gelu")
    s, d = gelu.fn, gelu.derivative(1)
    series = _mean_path_products(s, d)
    variances = np.array([0.6, 1.7, 3.1, 5.3])
    short = mehler.coefficient_tables(series, variances, correlation=0.8)
    full = mehler.coefficient_tables(series, variances)
    assert short.terms < full.terms == short.terms_at_one == full.terms_at_one
    rho = np.array([[0.8, -0.8, 0.5, 0.0], [-0.3, 0.8, -0.8, 0.7], [0.1, 0.79, -0.8, 0.8], [0.8, 0.2, -0.6, -0.8]])
    for f, g, _ in series:
        got = mehler.gram_rows(np.asarray(short[f]), np.asarray(short[g]), rho, short.terms)
        want = np.empty_like(got)
        for a, b in np.ndindex(rho.shape):
            c = rho[a, b] * np.sqrt(variances[a] * variances[b])
            want[a, b] = expectation((f, g), np.array([[variances[a], c], [c, variances[b]]]), nodes=96)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("name", SMOOTH)
def test_series_length_at_rho_one_grows_with_the_variance(name):
    """The length search runs on a few variances, the largest among them, because the number of
    Hermite coefficients above the tail grows with the variance: checked for sigma, sigma'^2,
    sigma^3 and sigma sigma'^2 of every smooth activation, variances 0.05 to 1."""
    s, d = integrands(get_activation(name))
    functions = (s, product(d, d), product(s, s, s), product(s, d, d))
    variances = np.geomspace(0.05, 1.0, 12)
    values, _ = mehler._coefficients(functions, variances, 768)
    values = np.abs(np.asarray(values))  # (functions, variances, terms)
    for table in values:
        above = table > 1e-12 * table.max()
        lengths = [int(np.nonzero(row)[0].max()) for row in above]
        assert lengths[-1] < 740, "the grid must resolve the largest variance"
        assert np.all(np.diff(lengths) >= 0), lengths


@pytest.mark.parametrize("name", ["gelu", "tanh", "erf", "sigmoid"])
def test_kept_coefficients_are_not_aliased(name):
    """The tables for |rho| <= 0.8 keep fewer orders than the series needs at rho = 1, but their
    Gauss–Hermite rule has as many nodes as the length at rho = 1 (plus a margin): a rule of N nodes
    aliases orders near 2N - n into f_n. They equal a rule of twice as many nodes to 2e-11 of the
    largest coefficient; a rule half-way between the two lengths is off by up to 2e-9 (tanh)."""
    s, d = integrands(get_activation(name))
    series = _mean_path_products(s, d)
    variances = np.geomspace(0.3, 3.0, 6)
    tables = mehler.coefficient_tables(series, variances, correlation=0.8)
    assert tables.terms < tables.terms_at_one
    finer, _ = mehler._coefficients(tables.functions, variances, tables.terms, 2 * (tables.terms_at_one + mehler._NODE_MARGIN))
    finer = np.asarray(finer)
    scale = np.abs(finer).max(axis=(1, 2), keepdims=True)
    np.testing.assert_array_less(np.abs(np.asarray(tables.values) - finer) / scale, 2e-11)
