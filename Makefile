# Two entry points: `make demo` (set up, run the quickstart) and `make test` (set up, run the tests).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test clean

setup: $(STAMP)

# The CPU build of torch goes in first: a plain `torch` requirement would otherwise pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,ray]'
	touch $(STAMP)

demo: $(STAMP)
	MUJOCO_GL=egl $(VENV)/bin/controlkit run experiments/quickstart.yaml

test: $(STAMP)
	MUJOCO_GL=egl $(VENV)/bin/pytest -q

clean:
	rm -rf $(VENV) runs build *.egg-info
