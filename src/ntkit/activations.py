"""The activation registry.

An :class:`Activation` bundles an elementwise JAX function sigma with what the rest of ntkit
needs to know about it:

* derivatives of any order, by forward-mode autodiff (``act.derivative(k)``); piecewise-linear
  activations carry their exact derivative, with sigma'(0) = (a_+ + a_-)/2 so that a zero-variance
  preactivation (z = 0 exactly) is treated the same way by theory and by sampled networks;
* ``slopes = (a_+, a_-)`` for the scale-invariant class sigma(z) = a_+ z (z > 0), a_- z (z < 0)
  (relu, leaky_relu, linear), which quadrature must split at z = 0;
* closed-form two-point Gaussian expectations <sigma_a sigma_b>_K and <sigma'_a sigma'_b>_K where
  they exist: the arc-cosine kernels for the scale-invariant class (Cho & Saul 2009), the
  arcsine kernel for erf (Williams 1997) and the GeLU kernel (:func:`_gelu_pair`). They are JAX
  functions of (K_aa, K_bb, K_ab), so derivatives with respect to the covariance (Price's
  theorem: the Stein forms) follow by autodiff where the form is smooth (erf, gelu).

Names: ``relu, leaky_relu (slope 0.01; leaky_relu(slope) for another), gelu (exact, z*Phi(z)),
gelu_tanh, tanh, erf, sigmoid, silu, softplus, sin, linear``; any JAX-differentiable callable is
accepted too.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erf as _erf

from . import trig

__all__ = ["Activation", "get_activation", "leaky_relu", "names"]


@dataclass(frozen=True)
class Activation:
    """An elementwise activation sigma with its derivative and Gaussian closed forms.

    ``fn`` must be elementwise and differentiable by JAX; ``slopes`` is ``(a_+, a_-)`` for
    scale-invariant activations and ``None`` otherwise; ``dfn`` optionally gives sigma' exactly.
    """

    name: str
    fn: Callable
    slopes: tuple[float, float] | None = None
    dfn: Callable | None = None
    closed_form: str | None = None  # "arccos", "arcsin" or "gelu"

    def __call__(self, z):
        return self.fn(z)

    @property
    def scale_invariant(self) -> bool:
        """True for sigma(z) = a_+ z (z>0), a_- z (z<0): relu, leaky_relu, linear."""
        return self.slopes is not None

    @property
    def has_kink(self) -> bool:
        """True if sigma' jumps at z = 0 (quadrature must split there)."""
        return self.slopes is not None and self.slopes[0] != self.slopes[1]

    def derivative(self, order: int = 1) -> Callable:
        """sigma^(order) as an elementwise function (order 0 is sigma itself)."""
        if order < 0:
            raise ValueError(f"derivative order must be >= 0, got {order}")
        if order == 0:
            return self.fn
        if self.slopes is not None:
            if order == 1:
                return self.dfn
            return lambda z: jnp.zeros_like(z)  # a.e.; Stein forms never need these
        f = self.dfn if self.dfn is not None else _elementwise_derivative(self.fn)
        for _ in range(order - 1):
            f = _elementwise_derivative(f)
        return f

    def pair_expectations(self, kaa, kbb, kab):
        """Closed forms of (<sigma_a sigma_b>, <sigma'_a sigma'_b>) under N(0, [[kaa,kab],[kab,kbb]]).

        Returns ``None`` when the activation has no closed form. Arrays broadcast; numpy float64.
        """
        if self.closed_form is None:
            return None
        kaa, kbb, kab = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (kaa, kbb, kab)))
        ss, dd = _pair_kernel(self.closed_form, self.slopes)(kaa, kbb, kab)
        return np.asarray(ss), np.asarray(dd)

    def pair_kernel(self):
        """The closed forms as one JAX function (kaa, kbb, kab) -> (<sigma sigma>, <sigma' sigma'>), or None."""
        return None if self.closed_form is None else _pair_kernel(self.closed_form, self.slopes)

    def pair_functions(self):
        """(G, P): JAX functions (kaa, kbb, kab) -> <sigma_a sigma_b>, <sigma'_a sigma'_b>, or None.

        Only for closed forms that are smooth in the covariance on all of it (erf, gelu): their
        derivatives with respect to (kaa, kbb, kab) are the Stein forms (Price's theorem).
        """
        if self.closed_form == "arcsin":
            return _arcsin_ss, _arcsin_dd
        if self.closed_form == "gelu":
            return _gelu_ss, _gelu_dd
        return None

    def pair_derivatives(self):
        """JAX function (kaa, kbb, kab) -> dict of P and the derivatives of G and P up to second order
        (``g_a`` = dG/dkaa, ``p_ac`` = d2P/dkaa dkab, ...; see :func:`_gelu_derivatives`) in closed form,
        or None (then they are taken by autodiff of :meth:`pair_functions`)."""
        return _gelu_derivatives if self.closed_form == "gelu" else None


def _elementwise_derivative(f: Callable) -> Callable:
    def df(z):
        z = jnp.asarray(z)
        return jax.jvp(f, (z,), (jnp.ones_like(z),))[1]

    return df


@functools.lru_cache(maxsize=None)
def _pair_kernel(kind: str, slopes):
    if kind == "arccos":
        return jax.jit(functools.partial(_arccos_pair, slopes))
    if kind == "arcsin":
        return jax.jit(lambda a, b, c: (_arcsin_ss(a, b, c), _arcsin_dd(a, b, c)))
    if kind == "gelu":
        return jax.jit(lambda a, b, c: (_gelu_ss(a, b, c), _gelu_dd(a, b, c)))
    raise ValueError(f"unknown closed form {kind!r}")


def _arccos_pair(slopes, kaa, kbb, kab):
    """Arc-cosine kernels of order 1 and 0 for sigma = a_+ relu(z) - a_- relu(-z).

    With s = sqrt(kaa kbb), cos(t) = kab / s:
      <sigma sigma>   = s [(a_+^2 + a_-^2) J1(t) - 2 a_+ a_- J1(pi - t)],  J1(t) = (sin t + (pi - t) cos t) / 2pi
      <sigma' sigma'> = (a_+^2 + a_-^2) J0(t) + 2 a_+ a_- J0(pi - t),       J0(t) = (pi - t) / 2pi
    A zero-variance entry is z = 0 exactly: sigma(0) = 0 and sigma'(0) = (a_+ + a_-)/2.
    """
    ap, am = slopes
    s = jnp.sqrt(jnp.maximum(kaa, 0.0) * jnp.maximum(kbb, 0.0))
    degenerate = s <= 0.0
    cos_t = jnp.clip(jnp.where(degenerate, 0.0, kab / jnp.where(degenerate, 1.0, s)), -1.0, 1.0)
    t = trig.arccos(cos_t)
    sin_t = jnp.sqrt(jnp.maximum(1.0 - cos_t**2, 0.0))
    j1 = (sin_t + (jnp.pi - t) * cos_t) / (2 * jnp.pi)
    j1_reflected = (sin_t - t * cos_t) / (2 * jnp.pi)  # J1(pi - t)
    ss = s * ((ap**2 + am**2) * j1 - 2 * ap * am * j1_reflected)
    dd = (ap**2 + am**2) * (jnp.pi - t) / (2 * jnp.pi) + 2 * ap * am * t / (2 * jnp.pi)
    mid = 0.5 * (ap + am)
    dd = jnp.where(degenerate, mid * mid, dd)  # E[sigma'(0) sigma'(z_b)] = mid * mid for symmetric z_b
    ss = jnp.where(degenerate, 0.0, ss)
    return ss, dd


def _inv_sqrt(y):
    """1/sqrt(y), written as sqrt(y)/y: XLA rewrites a/sqrt(y) into a*rsqrt(y), and its float64
    rsqrt on the CPU, inside a fused loop, made the closed-form kernels 3-4x slower."""
    return jnp.sqrt(y) / y


def _arcsin_ss(kaa, kbb, kab):
    """Williams' arcsine kernel: <erf erf> = (2/pi) arcsin(2 kab / sqrt(q)), q = (1 + 2kaa)(1 + 2kbb)."""
    x = 2 * kab * (_inv_sqrt(1 + 2 * kaa) * _inv_sqrt(1 + 2 * kbb))
    return (2 / jnp.pi) * trig.arcsin(jnp.clip(x, -1.0, 1.0))


def _arcsin_dd(kaa, kbb, kab):
    """<erf' erf'> = (4/pi) / sqrt(q - 4 kab^2), q = (1 + 2kaa)(1 + 2kbb) (q - 4 kab^2 >= 1 + 2kaa + 2kbb)."""
    q = (1 + 2 * kaa) * (1 + 2 * kbb)
    return (4 / jnp.pi) * _inv_sqrt(q - 4 * kab**2)


def _gelu_ss(kaa, kbb, kab):
    """<gelu(z_a) gelu(z_b)> for gelu(z) = z Phi(z).

    Writing Phi(z) = P(xi <= z) with xi ~ N(0, 1) independent, the expectation is
    E[z_a z_b 1(s > 0) 1(t > 0)] with s = z_a - xi_1, t = z_b - xi_2; Stein's lemma on z_a and the
    bivariate orthant probability give, with A = 1 + kaa, B = 1 + kbb, D = A B - kab^2 (> 0 always),

        <gelu gelu> = kab/4 + kab arcsin(kab / sqrt(A B)) / 2pi + [kaa kbb + kab^2 (1/A + 1/B - 1)] / (2 pi sqrt(D)).
    """
    A, B = 1.0 + kaa, 1.0 + kbb
    numerator = kaa * kbb + kab**2 * (1.0 / A + 1.0 / B - 1.0)
    angle = trig.arcsin(kab * (_inv_sqrt(A) * _inv_sqrt(B)))
    return kab / 4 + kab * angle / (2 * jnp.pi) + numerator * _inv_sqrt(A * B - kab**2) / (2 * jnp.pi)


def _gelu_dd(kaa, kbb, kab):
    """<gelu'(z_a) gelu'(z_b)> = d<gelu gelu>/dkab (Price's theorem), in closed form:

        1/4 + arcsin(kab / sqrt(A B)) / 2pi + kab / (2 pi sqrt(D)) + kab (2 kappa D + N) / (2 pi D^(3/2)),
    kappa = 1/A + 1/B - 1, N = kaa kbb + kab^2 kappa (notation of :func:`_gelu_ss`).
    """
    A, B = 1.0 + kaa, 1.0 + kbb
    D = A * B - kab**2
    inv_root = _inv_sqrt(D)
    kappa = 1.0 / A + 1.0 / B - 1.0
    numerator = kaa * kbb + kab**2 * kappa
    angle = trig.arcsin(kab * (_inv_sqrt(A) * _inv_sqrt(B)))
    return 0.25 + angle / (2 * jnp.pi) + (kab + kab * (2 * kappa * D + numerator) / D) * inv_root / (2 * jnp.pi)


def _gelu_derivatives(kaa, kbb, kab):
    """P = <gelu' gelu'> and the first and second derivatives of G = <gelu gelu> and P with respect
    to (kaa, kbb, kab) that the Stein forms need (Price's theorem), in closed form.

    With A = 1 + kaa, B = 1 + kbb, c = kab, D = A B - c^2 (notation of :func:`_gelu_ss`), the
    derivatives of the closed forms of G and P (done symbolically; checked against autodiff of
    them and against 2-D quadrature in tests/test_activations.py) are rational in (A, B, c) over powers of D:

        dG/dkaa       = [B (A+1)(B-1) - c^2 (2AB - A + 3B)/A + c^4 (A+2)/A^2] / (4 pi D^(3/2))
        d2G/dkaa2     = [-B^2 (A+3)(B-1) + c^2 B (4AB - A + 15B)/A - 5 c^4 B (A+4)/A^2 + 2 c^6 (A+4)/A^3] / (8 pi D^(5/2))
        dP/dkaa       = -c [B (A+3)(B+1) - c^2 (2AB + A + 5B)/A + c^4 (A+2)/A^2] / (4 pi D^(5/2))
        dP/dkab       = [A B (A+1)(B+1) - c^2 (2AB + A + B - 2) + c^4] / (2 pi D^(5/2))
        d2P/dkaa2     = c [3 B^2 (A+5)(B+1) - c^2 B (8AB + 3A + 35B)/A + 7 c^4 B (A+4)/A^2 - 2 c^6 (A+4)/A^3] / (8 pi D^(7/2))
        d2P/dkaa dkab = -[A B^2 (A+3)(B+1) - c^2 B (2AB - A + 3B - 12) + c^4 (B-2)] / (4 pi D^(7/2))
        d2P/dkab2     = c [A B (A+3)(B+3) - c^2 (2AB + 3A + 3B - 6) + c^4] / (2 pi D^(7/2)),

    the same with A and B swapped for the derivatives in kbb. Elementwise: broadcast arrays.
    """
    A, B, c = 1.0 + kaa, 1.0 + kbb, kab
    c2 = c * c
    D = A * B - c2
    r = _inv_sqrt(D)
    r2 = r * r
    r3 = r * r2
    r5, r7 = r3 * r2, r3 * r2 * r2
    q = 1.0 / (2 * jnp.pi)

    def along(A, B):  # the derivatives in the variance of the sample with 1 + variance = A
        a = 1.0 / A
        g_a = 0.5 * q * r3 * (B * (A + 1) * (B - 1) - c2 * a * (2 * A * B - A + 3 * B) + c2 * c2 * a * a * (A + 2))
        g_aa = 0.25 * q * r5 * (-B * B * (A + 3) * (B - 1) + c2 * a * B * (4 * A * B - A + 15 * B)
                                + c2 * c2 * a * a * (-5 * B * (A + 4) + 2 * c2 * a * (A + 4)))
        p_a = -0.5 * q * r5 * c * (B * (A + 3) * (B + 1) - c2 * a * (2 * A * B + A + 5 * B) + c2 * c2 * a * a * (A + 2))
        p_aa = 0.25 * q * r7 * c * (3 * B * B * (A + 5) * (B + 1) - c2 * a * B * (8 * A * B + 3 * A + 35 * B)
                                    + c2 * c2 * a * a * (7 * B * (A + 4) - 2 * c2 * a * (A + 4)))
        p_ac = -0.5 * q * r7 * (A * B * B * (A + 3) * (B + 1) - c2 * B * (2 * A * B - A + 3 * B - 12) + c2 * c2 * (B - 2))
        return g_a, g_aa, p_a, p_aa, p_ac

    g_a, g_aa, p_a, p_aa, p_ac = along(A, B)
    g_b, g_bb, p_b, p_bb, p_bc = along(B, A)
    AB = A * B
    p = 0.25 + trig.arcsin(c * (_inv_sqrt(A) * _inv_sqrt(B))) / (2 * jnp.pi) + q * r3 * c * (AB + A * AB + B * AB - (A + B) * c2) / AB
    p_c = q * r5 * (AB * (A + 1) * (B + 1) - c2 * (2 * AB + A + B - 2) + c2 * c2)
    p_cc = q * r7 * c * (AB * (A + 3) * (B + 3) - c2 * (2 * AB + 3 * A + 3 * B - 6) + c2 * c2)
    return {"p": p, "g_a": g_a, "g_b": g_b, "g_aa": g_aa, "g_bb": g_bb, "p_a": p_a, "p_b": p_b, "p_c": p_c,
            "p_aa": p_aa, "p_bb": p_bb, "p_ac": p_ac, "p_bc": p_bc, "p_cc": p_cc}


def _piecewise_linear(name: str, a_plus: float, a_minus: float) -> Activation:
    mid = 0.5 * (a_plus + a_minus)

    def fn(z):
        return jnp.where(z > 0, a_plus * z, a_minus * z)

    def dfn(z):
        return jnp.where(z > 0, a_plus, jnp.where(z < 0, a_minus, mid)) * jnp.ones_like(z)

    return Activation(name, fn, slopes=(float(a_plus), float(a_minus)), dfn=dfn, closed_form="arccos")


MAX_SLOPE = 1e100


def leaky_relu(slope: float = 0.01) -> Activation:
    """sigma(z) = z for z > 0 and slope * z for z < 0 (scale invariant)."""
    try:
        slope = float(slope)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"leaky_relu slope must be a number, got {slope!r}") from exc
    if not (math.isfinite(slope) and abs(slope) <= MAX_SLOPE):
        raise ValueError(f"leaky_relu slope must be finite with |slope| <= {MAX_SLOPE:g} (its square enters every kernel), got {slope}")
    return _piecewise_linear(f"leaky_relu({slope:g})", 1.0, slope)


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _gelu(z):
    return z * 0.5 * (1.0 + _erf(z / math.sqrt(2.0)))


def _gelu_prime(z):
    return 0.5 * (1.0 + _erf(z / math.sqrt(2.0))) + z * jnp.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _gelu_tanh(z):
    return 0.5 * z * (1.0 + jnp.tanh(_SQRT_2_OVER_PI * (z + 0.044715 * z**3)))


def _erf_prime(z):
    return (2.0 / math.sqrt(math.pi)) * jnp.exp(-z * z)


def _tanh_prime(z):
    return 1.0 - jnp.tanh(z) ** 2


_REGISTRY: dict[str, Callable[[], Activation]] = {
    "relu": lambda: _piecewise_linear("relu", 1.0, 0.0),
    "leaky_relu": lambda: leaky_relu(0.01),
    "linear": lambda: _piecewise_linear("linear", 1.0, 1.0),
    "gelu": lambda: Activation("gelu", _gelu, dfn=_gelu_prime, closed_form="gelu"),
    "gelu_tanh": lambda: Activation("gelu_tanh", _gelu_tanh),
    "tanh": lambda: Activation("tanh", jnp.tanh, dfn=_tanh_prime),
    "erf": lambda: Activation("erf", _erf, dfn=_erf_prime, closed_form="arcsin"),
    "sigmoid": lambda: Activation("sigmoid", jax.nn.sigmoid),
    "silu": lambda: Activation("silu", jax.nn.silu),
    "softplus": lambda: Activation("softplus", jax.nn.softplus),
    "sin": lambda: Activation("sin", jnp.sin, dfn=jnp.cos),
}


def names() -> list[str]:
    """Names accepted by :func:`get_activation`."""
    return sorted(_REGISTRY)


_LEAKY = re.compile(r"^leaky_relu\(\s*([-+0-9.eE]+)\s*\)$")


def get_activation(spec) -> Activation:
    """An :class:`Activation` from a registry name, ``"leaky_relu(0.2)"``, an Activation, or a callable."""
    if isinstance(spec, Activation):
        return spec
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key in _REGISTRY:
            return _REGISTRY[key]()
        match = _LEAKY.match(key)
        if match:
            return leaky_relu(match.group(1))
        raise ValueError(f"unknown activation {spec!r}; known: {', '.join(names())}, leaky_relu(slope), or a JAX callable")
    if callable(spec):
        return _from_callable(spec)
    raise TypeError(f"activation must be a name, an Activation or a callable, got {type(spec).__name__}")


def _from_callable(fn: Callable) -> Activation:
    probe = jnp.linspace(-2.0, 2.0, 5)
    try:
        value = jnp.asarray(fn(probe))
        slope = _elementwise_derivative(fn)(probe)
    except Exception as exc:  # a user callable can fail in any way: report it as the activation's fault
        raise TypeError(f"activation callable {fn!r} is not an elementwise JAX-differentiable function: {exc}") from exc
    if value.shape != probe.shape or slope.shape != probe.shape:
        raise TypeError(f"activation callable {fn!r} must be elementwise (shape in = shape out)")
    return Activation(getattr(fn, "__name__", "custom"), fn)
