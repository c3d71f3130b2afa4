"""Test configuration: float64 everywhere and loud rank promotion, so silent broadcasting fails."""
import os
import tempfile

import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
# a command invoked without --no-compilation-cache writes compiled programs here, not in the user's home
os.environ["NTKIT_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), "ntkit-test-compilation-cache")


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
