# `make demo` runs the main job; `make test` runs the test suite.
# Each first makes the same virtual environment in .venv (again only when setup.py or this Makefile
# changes): `$(PYTHON) -m venv`, then its pip (upgraded first) installs $(TF_PACKAGE), this package
# (editable) with its [test,demo,beam] extras, and $(TF2_MODEL_PACKAGE) without its dependencies. So
# it needs $(PYTHON) with its venv module and a package index to install from. The [beam] extra is
# there so that the tests test the Beam runner (its tests skip where it is not installed).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TF_PACKAGE ?= tensorflow-cpu==2.21.0
TF2_MODEL_PACKAGE ?= basic-pitch==0.4.0

$(VENV)/.installed: setup.py Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TF_PACKAGE)"
	$(PY) -m pip install -q -e ".[test,demo,beam]"
	# A real TF2 SavedModel for the tests (basic_pitch/saved_models/icassp_2022/nmp, in the wheel). Its own
	# requirements pin tensorflow<2.15.1 and audio libraries; the tests read only its files, so no deps.
	$(PY) -m pip install -q --no-deps "$(TF2_MODEL_PACKAGE)"
	touch $@

.PHONY: demo test bench clean
demo: $(VENV)/.installed
	$(PY) -m graphsurgeon demo

# Two pytest-xdist processes, each test file whole in one of them (a module fixture is built once, a session
# fixture once per process): 9 min 50 s for the suite on 2 cores against 12 min 11 s in one process
# (2026-11-28). `pytest tests/test_x.py` still runs in one.
test: $(VENV)/.installed
	$(PY) -m pytest -q -n 2 --dist loadfile tests

bench: $(VENV)/.installed
	$(PY) benchmarks/restore_bench.py
	$(PY) benchmarks/cache_bench.py
	$(PY) benchmarks/migrate_bench.py

clean:
	rm -rf $(VENV) *.egg-info
