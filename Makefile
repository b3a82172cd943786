# make demo / make test do all set-up themselves (idempotent):
#   Debian GL packages for headless EGL rendering, a virtual environment in .venv,
#   the CPU build of torch first (so no resolver ever pulls a CUDA build), then hybrid
#   with Blender's Cycles (bpy) for --renderer cycles.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.hybrid-installed
TORCH  ?= torch==2.13.0
DEB_PACKAGES := libegl1 libegl-mesa0 libgl1-mesa-dri libgles2
export PYOPENGL_PLATFORM ?= egl

.PHONY: setup system-deps demo test test-slow bench train eval clean

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
	$(PIP) install -q -e '.[dev,cycles]'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/hybrid render scenes/showcase.yaml --out out/showcase

# The fast tests in one process per core (at most 4: each holds torch, Taichi and a GL
# context); the slow ones in at most 2 (some hold several GB of particles).
test: setup
	$(PY) -m pytest -q -m "not slow" -n auto --maxprocesses 4 --durations=15

test-slow: setup
	$(PY) -m pytest -q -m slow -n auto --maxprocesses 2 --durations=20

bench: setup
	$(PY) benchmarks/bench_physics.py
	$(PY) benchmarks/bench_breaking.py
	$(PY) benchmarks/bench_render.py
	$(PY) benchmarks/bench_post.py
	$(PY) benchmarks/bench_dataset.py
	$(PY) benchmarks/bench_storage.py
	$(PY) benchmarks/bench_cycles.py
	$(PY) benchmarks/bench_neural.py
	$(PY) benchmarks/bench_neural_clip.py
	$(PY) benchmarks/bench_mpm.py
	$(PY) benchmarks/bench_gas.py
	$(PY) benchmarks/bench_kernel_build.py

# The default neural checkpoint from scratch: path-traced training data
# (datasets/neural_pt.yaml: Cycles rgb beside the raster beauty, about 25 minutes on 2
# idle cores), then training/neural_pt.yaml (about 45 minutes), whose result becomes
# checkpoints/neural_pt (its model card, README.md, is kept). Rerunning resumes
# whatever was left unfinished.
PT_DATA := out/neural_pt
train: setup
	$(VENV)/bin/hybrid dataset generate datasets/neural_pt.yaml --out $(PT_DATA)/train --clips 128 --seed 0
	$(VENV)/bin/hybrid dataset generate datasets/neural_pt.yaml --out $(PT_DATA)/heldout --clips 16 --seed 1
	$(PY) training/train.py training/neural_pt.yaml --resume
	rm -rf checkpoints/neural_pt.new && cp -r $(PT_DATA)/run_64/final checkpoints/neural_pt.new
	test ! -f checkpoints/neural_pt/README.md || cp checkpoints/neural_pt/README.md checkpoints/neural_pt.new/
	rm -rf checkpoints/neural_pt && mv checkpoints/neural_pt.new checkpoints/neural_pt

# EVAL.md: the default checkpoint on held-out clips of its recipe drawn again at
# 256 x 256 against Cycles at 32 samples + OIDN, and one clip ten windows long for
# drift (about 9 minutes on 2 cores); EVAL_scenes.md: the first 8 frames of every
# scene in scenes/ against Cycles (about 5 minutes).
eval: setup
	$(VENV)/bin/hybrid dataset generate datasets/neural_pt.yaml --out $(PT_DATA)/heldout --clips 16 --seed 1
	$(VENV)/bin/hybrid eval checkpoints/neural_pt $(PT_DATA)/heldout --clips 4 --long-clips 1 --resolution 256x256 --reference-samples 32 --out EVAL.md
	$(PY) benchmarks/eval_scenes.py --frames 8 --samples 32 --out EVAL_scenes.md

clean:
	rm -rf out .pytest_cache
