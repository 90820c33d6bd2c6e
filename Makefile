# Setup, demo, test and run targets. Every target creates the venv if it is missing.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export TF_USE_LEGACY_KERAS := 1
export PYTHONHASHSEED := 0
# TFX 1.16 needs Python 3.10: use python3.10 from PATH, else the pyenv install.
PYTHON310 ?= $(shell (python3.10 --version >/dev/null 2>&1 && echo python3.10) || ls $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.10*/bin/python3.10 2>/dev/null | tail -1)
DATA ?= ../shared/data/amazon-cdsr/cloth_sport
OUT ?= runs
CONFIG ?=
PAIR ?= cloth_sport
SEEDS ?= 5
SWEEP_SEEDS ?= 1

.PHONY: venv demo test test-slow test-long lint run reproduce kubeflow tensorboard clean bench

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	@test -n "$(PYTHON310)" || { echo "Python 3.10 not found (TFX 1.16 needs it)"; exit 1; }
	@test -x $(PY) || $(PYTHON310) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip<25"
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

demo: venv
	$(PY) -m pipeline.cli demo --out $(OUT)/demo $(if $(CONFIG),--config $(CONFIG))

run: venv
	$(PY) -m pipeline.cli run --data $(DATA) --out $(OUT)/$(notdir $(DATA)) $(if $(CONFIG),--config $(CONFIG))

reproduce: venv
	$(PY) -m pipeline.cli reproduce --pair $(PAIR) --seeds $(SEEDS) --sweep-seeds $(SWEEP_SEEDS) $(if $(CONFIG),--config $(CONFIG))

IMAGE ?= i2vae-pipeline:latest
PIPELINE_ROOT ?= gs://YOUR_BUCKET/i2vae
kubeflow: venv
	$(PY) -m pipeline.cli kubeflow --image $(IMAGE) --pipeline-root $(PIPELINE_ROOT) --data $(DATA) --output $(OUT)/kubeflow/i2vae_pipeline.json

bench: venv  # speed (cloth_sport run needed: make run), scale, trace, recall, serving
	$(PY) -m pipeline.cli bench speed --run $(OUT)/cloth_sport
	$(PY) -m pipeline.cli bench scale
	$(PY) -m pipeline.cli bench trace
	$(PY) -m pipeline.cli bench recall
	$(PY) -m pipeline.cli bench serving --model-base-path $(OUT)/cloth_sport/serving_model/i2vae

# two pytest workers (the machine's 2 cores), each taking whole files so a module's fixture runs once
PYTEST = $(PY) -m pytest -q -n 2 --dist loadfile --durations=15
test: venv  # the default suite: every test not marked slow; lists the 15 slowest tests
	$(PYTEST)

lint: venv  # pyflakes checks and sorted imports (ruff; `.venv/bin/ruff check . --fix` sorts them)
	$(VENV)/bin/ruff check .

test-slow: venv  # the tests marked slow: more pipeline and Beam runs, trainings, fresh processes, MirroredStrategy, XLA
	$(PYTEST) -m slow

test-long: venv  # the three longest suites (a killed run resumed, two workers, repeatability); not in CI for its time
	$(PYTEST) -m long

RUN ?= $(OUT)/demo
tensorboard: venv  # make tensorboard RUN=runs/cloth_sport
	$(VENV)/bin/tensorboard --logdir $(RUN)/pipeline_root --bind_all

clean:
	rm -rf $(OUT)
