"""Test configuration: float64 everywhere and loud rank promotion, so silent broadcasting fails."""
import os
import tempfile

import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
# commands invoked in this process pass --no-compilation-cache: the CLI turns JAX's persistent cache on
# for the whole process, and with it on for every later test, JAX's own (de)serialization of a sampler
# executable crashed the test process (segfault, abort). A command that does not pass it (tests/test_cli.py
# runs them in subprocesses) writes compiled programs in a directory of this run, removed at exit.
_COMPILATION_CACHE = tempfile.TemporaryDirectory(prefix="ntkit-test-compilation-cache-")
os.environ["NTKIT_CACHE_DIR"] = _COMPILATION_CACHE.name


@pytest.fixture(autouse=True, scope="module")
def _fresh_compilations():
    """Drop JAX's compiled programs after each test file: one process compiling the whole suite's
    programs crashed inside XLA's compiler near the end (segfault while compiling a sampler program
    that compiles fine in a shorter run)."""
    yield
    jax.clear_caches()


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
