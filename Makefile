# Two entry points: `make demo` (set up, run the quickstart) and `make test` (set up, run the tests).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: setup demo test test-all clean

setup: $(STAMP)

# The CPU build of torch goes in first: a plain `torch` requirement would otherwise pull a multi-GB CUDA build from
# PyPI. Asking for the `+cpu` local version takes a CPU wheel pip can already see (a find-links folder or a mirror
# configured on this machine; PyPI has none, so never a CUDA build), its dependencies from the usual index; else
# it comes from PyTorch's CPU index (TORCH_INDEX), as on a stock machine.
$(STAMP): pyproject.toml
	@# MuJoCo renders offscreen through EGL; install the system library if this machine lacks it.
	@ldconfig -p | grep -q 'libEGL.so.1' || { apt-get update -qq && apt-get install -y -qq libegl1 libegl-mesa0 libgl1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet 'torch==2.13.0+cpu' 2>/dev/null \
		|| $(PY) -m pip install --quiet torch==2.13.0 --index-url $(TORCH_INDEX)
	$(PY) -m pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

demo: $(STAMP)
	MUJOCO_GL=egl $(VENV)/bin/controlkit run experiments/quickstart.yaml

# Fast suite (what CI runs); `make test-all` adds the tests marked slow.
test: $(STAMP)
	MUJOCO_GL=egl $(VENV)/bin/pytest -q -m "not slow"

test-all: $(STAMP)
	MUJOCO_GL=egl $(VENV)/bin/pytest -q

clean:
	rm -rf $(VENV) runs build *.egg-info
