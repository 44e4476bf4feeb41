# bmnist-kit. The commands most people need:
#   make lab    set up .venv, warm the MNIST cache, open JupyterLab on your copy of the exercise
#   make test   the same set-up, then the whole test suite
#   make check  the inner loop: lint, then the tests that need no fresh venv, browser, cluster, class or lesson run
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.bmnist-installed
PYTEST_ARGS ?=
SUBMISSIONS ?= submissions
GRADES ?= grades

.PHONY: lab test check setup data exercise solution grade release wheels bench lint docs clean-venv

# The student's own copy, work/binary_mnist.ipynb (git-ignored; made once from the exercise, never
# overwritten), opens first, and the URL JupyterLab prints leads to it. The repository is the file
# browser's root, without build artefacts. No news pop-up, no update check (bmnist_helpers/lab.py).
# LAB_ARGS go to jupyter lab, e.g. make lab LAB_ARGS=--no-browser
LAB_ARGS ?=
lab: setup data
	$(BIN)/jupyter labextension disable --level=sys_prefix "@jupyterlab/apputils-extension:announcements" >/dev/null 2>&1
	$(BIN)/python -m bmnist_helpers.lab $(LAB_ARGS)

# The JAX compilation cache makes the notebook runs of the suite faster after the first.
# Every test, every tier (.ci/run runs this): 729 tests, about 40 minutes on 2 cores.
test: setup data
	JAX_COMPILATION_CACHE_DIR="$${JAX_COMPILATION_CACHE_DIR:-$(CURDIR)/.jax-cache}" $(BIN)/python -m pytest $(PYTEST_ARGS)

# The inner loop: lint, then every test outside the slow tiers (pytest markers, pyproject.toml): fresh
# venvs, a browser, a Slurm cluster, a class of notebooks graded, the whole lesson executed. 348 tests;
# 2 min 37 s on this 2-core machine (ruff, mypy and pytest together).
SLOW_TIERS := venv or browser or cluster or batch or notebook
check: lint data
	JAX_COMPILATION_CACHE_DIR="$${JAX_COMPILATION_CACHE_DIR:-$(CURDIR)/.jax-cache}" $(BIN)/python -m pytest -m "not ($(SLOW_TIERS))" $(PYTEST_ARGS)

setup: $(STAMP)

# Idempotent: the venv is made once; the install reruns only when the requirements change.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The dev extra is the instructor and lab extras plus the test tools; `kernel` registers the bmnist
# kernel (the one the notebooks ask for) with its JAX compilation cache, as Binder's postBuild does.
$(STAMP): $(BIN)/python pyproject.toml setup.py kit/pyproject.toml engine/pyproject.toml lesson/pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	$(BIN)/python -m bmnist_helpers kernel --sys-prefix >/dev/null
	touch $@

data: setup
	$(BIN)/python -m bmnist_helpers.data fetch

# Regenerate the exercise from the solution (the exercise is never edited by hand).
exercise: setup
	$(BIN)/python -m bmnist_lesson.exercise

# Re-run the solution in a fresh kernel and store its outputs as the expected results.
solution: setup data
	$(BIN)/python -m bmnist_lesson.exercise --execute-solution
	$(BIN)/python -m bmnist_lesson.exercise

# ARGS go to bmnist-grade as they are, e.g. make grade ARGS="--resume" or ARGS="--force --jobs 4"
ARGS ?=
grade: setup data
	$(BIN)/bmnist-grade $(SUBMISSIONS) --out $(GRADES) $(ARGS)

# What students get (the exercise, the kit's wheel, a README for students; nothing that answers a task):
#   make release OUT=DIR [KIT_URL=https://.../bmnist_kit-X.Y.Z-py3-none-any.whl] [REPO_URL=https://github.com/COURSE/REPO]
# KIT_URL: where you publish the kit's wheel (the setup cell installs it from there); REPO_URL: the
# repository that holds the release (the students' README links Colab and Binder to it).
KIT_URL ?=
REPO_URL ?=
release: setup
	@test -n "$(OUT)" || { echo "make release needs OUT=DIR, a new folder for the release" >&2; exit 2; }
	$(BIN)/python -m bmnist_lesson.release "$(OUT)" --kit-url "$(KIT_URL)" --repo-url "$(REPO_URL)"

# The wheel of each distribution: bmnist-kit (students), nbjudge (the engine), bmnist-lesson (instructors).
wheels: setup
	@test -n "$(OUT)" || { echo "make wheels needs OUT=DIR, the folder for the wheels" >&2; exit 2; }
	$(BIN)/python -m bmnist_lesson.release --wheels "$(OUT)"

# Side-by-side speed ratios (kit vs the sheet-style baseline); about five minutes on a quiet machine.
# The class of issue 27: 8 full-marks copies, --jobs 2 (with its reference run: 9 jobs). The last
# lines print every figure side by side with its baseline and goal. Quicker: BENCH_GRADING="--class-size 3"
BENCH_GRADING ?= --class-size 8 --jobs 2
bench: setup data
	@start=$$(date +%s) && figures=$$(mktemp) && $(BIN)/python benchmarks/notebook.py --record $$figures \
	  && $(BIN)/python benchmarks/data.py && $(BIN)/python benchmarks/widgets.py \
	  && $(BIN)/python benchmarks/grading.py $(BENCH_GRADING) --record $$figures \
	  && $(BIN)/python benchmarks/summary.py $$figures && rm -f $$figures \
	  && echo "make bench took $$(( $$(date +%s) - start )) s"

# The documentation site (Sphinx + MyST-NB + furo, offline, warnings as errors) into docs/_build/html;
# open docs/_build/html/index.html. The lesson page is regenerated from the notebooks on every build.
docs: setup
	$(BIN)/sphinx-build -W --keep-going -n -b html docs docs/_build/html

# ruff, and mypy (strict on the engine; its settings are in pyproject.toml).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
