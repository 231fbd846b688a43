# Two commands do all the set-up on a fresh machine with Python >= 3.11:
#   make demo   -> creates .venv, installs calib with the training extra, runs the main job on the bundled data
#   make test   -> creates .venv, installs calib with the training and test extras, runs the whole test suite
# (the runtime install alone, without TensorFlow, is `pip install .`: predict, inspect, models, serve)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.calib-installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[train,test]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/calib calibrate

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
