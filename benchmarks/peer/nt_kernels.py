"""neural-tangents' infinite-width NNGP and NTK of the output of an MLP, per case (peer venv).

For each case, ``stax.serial(Dense, act, ..., Dense)`` (see ``_common.mlp``) and its jitted
``kernel_fn(x, None, ("nngp", "ntk"))`` on the case's inputs; timed after a warm-up call.
Interface: ``benchmarks/_peer.py`` (``nt_kernels``).
"""

from __future__ import annotations

import jax

import _common


def main() -> None:
    work, request, arrays = _common.read_request()
    baseline = _common.peak_rss_mib()
    summaries, outputs = [], {}
    for case in request["cases"]:
        _, _, kernel_fn = _common.mlp(case["activation"], int(case["depth"]), float(case["c_w"]), float(case["c_b"]), deg=case.get("deg"))
        kernel_fn = jax.jit(kernel_fn, static_argnames="get")
        x = arrays[case["x"]]
        out, time_s, compile_s = _common.timed(lambda x: kernel_fn(x, None, ("nngp", "ntk")), x, repeats=int(request.get("repeats", 1)))
        outputs[f"{case['name']}/nngp"] = out.nngp
        outputs[f"{case['name']}/ntk"] = out.ntk
        summaries.append({"name": case["name"], "time_s": time_s, "compile_s": compile_s})
    _common.write_result(work, {"cases": summaries}, outputs, baseline)


if __name__ == "__main__":
    main()
