# bmnist-kit. The two commands most people need:
#   make lab    set up .venv, warm the MNIST cache, open JupyterLab on the exercise
#   make test   the same set-up, then the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.bmnist-installed
PYTEST_ARGS ?=
SUBMISSIONS ?= submissions
GRADES ?= grades

.PHONY: lab test setup data exercise solution grade bench lint clean-venv

lab: setup data
	$(BIN)/jupyter lab notebooks/binary_mnist.ipynb $$([ "$$(id -u)" = 0 ] && echo --allow-root)

# The JAX compilation cache makes the notebook runs of the suite faster after the first.
test: setup data
	JAX_COMPILATION_CACHE_DIR="$${JAX_COMPILATION_CACHE_DIR:-$(CURDIR)/.jax-cache}" $(BIN)/python -m pytest $(PYTEST_ARGS)

setup: $(STAMP)

# Idempotent: the venv is made once; the install reruns only when the requirements change.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The dev extra is the instructor and lab extras plus the test tools; `kernel` registers the bmnist
# kernel (the one the notebooks ask for) with its JAX compilation cache, as Binder's postBuild does.
$(STAMP): $(BIN)/python pyproject.toml setup.py constraints.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	$(BIN)/python -m bmnist_helpers kernel --sys-prefix >/dev/null
	touch $@

data: setup
	$(BIN)/python -m bmnist_helpers.data fetch

# Regenerate the exercise from the solution (the exercise is never edited by hand).
exercise: setup
	$(BIN)/python -m bmnist_helpers.exercise

# Re-run the solution in a fresh kernel and store its outputs as the expected results.
solution: setup data
	$(BIN)/python -m bmnist_helpers.exercise --execute-solution
	$(BIN)/python -m bmnist_helpers.exercise

grade: setup data
	$(BIN)/bmnist-grade $(SUBMISSIONS) --out $(GRADES)

bench: setup data
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

lint: setup
	$(BIN)/ruff check .
