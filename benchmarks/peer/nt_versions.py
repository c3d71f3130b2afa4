"""Versions of the peer venv's jax, jaxlib, neural-tangents and numpy (``write_result`` adds them).
Interface: ``benchmarks/_peer.py``; the request is ignored."""

from __future__ import annotations

import _common

if __name__ == "__main__":
    work, _, _ = _common.read_request()
    _common.write_result(work, {}, {}, _common.peak_rss_mib())
