"""Test configuration: float64 everywhere and loud rank promotion, so silent broadcasting fails."""
import os
import tempfile

import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
# a command invoked without --no-compilation-cache writes compiled programs in a directory of this run
# (removed at exit), never in the user's home nor among entries an earlier run left: reading one of
# those once crashed the test process inside JAX's cache
_COMPILATION_CACHE = tempfile.TemporaryDirectory(prefix="ntkit-test-compilation-cache-")
os.environ["NTKIT_CACHE_DIR"] = _COMPILATION_CACHE.name


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False, help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` are skipped unless ``--run-slow`` is given (``make validate``)."""
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow (make validate)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
