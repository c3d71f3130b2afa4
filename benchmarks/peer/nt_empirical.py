"""neural-tangents' empirical NTK (``nt.empirical_ntk_fn``) of an MLP at random parameters, per
implementation (peer venv).

The MLP of ``_common.mlp`` (width ``width``, one output), parameters from
``init_fn(jax.random.PRNGKey(seed), x.shape)``; for each implementation the jitted
``empirical_ntk_fn(apply_fn, trace_axes=(), vmap_axes=0, implementation=...)(x, None, params)``,
timed (best of ``repeats``) after a warm-up call. Interface: ``benchmarks/_peer.py``
(``nt_empirical``).
"""

from __future__ import annotations

import jax

import _common

IMPLEMENTATIONS = ("JACOBIAN_CONTRACTION", "NTK_VECTOR_PRODUCTS", "STRUCTURED_DERIVATIVES", "AUTO")


def main() -> None:
    work, request, arrays = _common.read_request()
    baseline = _common.peak_rss_mib()
    x = arrays["x"]
    init_fn, apply_fn, _ = _common.mlp(request["activation"], int(request["depth"]), float(request["c_w"]), float(request["c_b"]), width=int(request["width"]))
    _, params = init_fn(jax.random.PRNGKey(int(request.get("seed", 0))), x.shape)
    summaries, outputs = {}, {}
    for name in request.get("implementations", IMPLEMENTATIONS):
        before = _common.peak_rss_mib()
        ntk_fn = _common.nt.empirical_ntk_fn(apply_fn, trace_axes=(), vmap_axes=0, implementation=_common.nt.NtkImplementation[name])
        ntk_fn = jax.jit(ntk_fn)
        ntk, time_s, compile_s = _common.timed(ntk_fn, x, None, params, repeats=int(request.get("repeats", 1)))
        outputs[f"ntk/{name}"] = ntk.reshape(x.shape[0], x.shape[0])
        summaries[name] = {"time_s": time_s, "compile_s": compile_s, "peak_rss_mib": _common.peak_rss_mib() - before}
    _common.write_result(work, {"implementations": summaries}, outputs, baseline)


if __name__ == "__main__":
    main()
