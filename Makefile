# make demo / make test do all set-up themselves (idempotent):
#   Debian GL packages for headless EGL rendering, a virtual environment in .venv,
#   the CPU build of torch first (so no resolver ever pulls a CUDA build), then hybrid.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.hybrid-installed
TORCH  ?= torch==2.13.0
DEB_PACKAGES := libegl1 libegl-mesa0 libgl1-mesa-dri libgles2
export PYOPENGL_PLATFORM ?= egl

.PHONY: setup system-deps demo test test-slow bench clean

setup: system-deps $(STAMP)

system-deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO=sudo; else \
	    echo "error: need root (or sudo) to install:$$missing"; exit 1; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(STAMP): pyproject.toml hybrid/physics/_contact_scan.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/hybrid render scenes/showcase.yaml --out out/showcase

test: setup
	$(PY) -m pytest -q -m "not slow"

test-slow: setup
	$(PY) -m pytest -q -m slow

bench: setup
	$(PY) benchmarks/bench_physics.py
	$(PY) benchmarks/bench_render.py
	$(PY) benchmarks/bench_post.py
	$(PY) benchmarks/bench_dataset.py

clean:
	rm -rf out .pytest_cache
