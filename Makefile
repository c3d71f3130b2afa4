# ntkit: every target creates the virtual environment first if it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# the test suite runs in this many processes (pytest-xdist); tests sharing a costly module fixture stay in one
TEST_WORKERS ?= 2
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test validate bench peer clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ntkit demo

test: $(STAMP)
	$(PY) -m pytest tests -n $(TEST_WORKERS) --dist loadgroup

validate: $(STAMP)
	$(PY) -m pytest tests -m slow --run-slow
	$(VENV)/bin/ntkit validate --out docs

bench: $(STAMP)
	$(PY) benchmarks/run.py

PEER := .peer
PEER_STAMP := $(PEER)/.installed-stamp

# neural-tangents 0.6.5 needs jax 0.4.25, numpy < 2 and TensorFlow: its own venv, built once.
$(PEER_STAMP): benchmarks/peer/requirements.txt benchmarks/peer/requirements-nodeps.txt
	test -x $(PEER)/bin/python || $(PYTHON) -m venv $(PEER)
	$(PEER)/bin/python -m pip install --quiet --upgrade pip
	$(PEER)/bin/python -m pip install --quiet -r benchmarks/peer/requirements.txt
	$(PEER)/bin/python -m pip install --quiet --no-deps -r benchmarks/peer/requirements-nodeps.txt
	touch $(PEER_STAMP)

peer: $(STAMP) $(PEER_STAMP)
	$(PY) benchmarks/compare_peer.py

clean:
	rm -rf $(VENV) .pytest_cache
