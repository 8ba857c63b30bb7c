# One command per job on a fresh machine (see README.md):
#   make demo   set up, then run the pipeline end to end on generated images
#   make test   set up, then lint, type-check and run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-train-dev

.PHONY: setup test lint typecheck pytest demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[train,dev]"
	touch $(STAMP)

setup: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check trt_mass tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(PY) -m pytest -q

test: lint typecheck pytest

demo: $(STAMP)
	$(VENV)/bin/trtmass synth out/demo/dicom --count 4 --seed 0 --scale 0.25
	$(VENV)/bin/trtmass export --init random --arch resnet18 --head-width 64 --seed 0 --tile 256x224 \
		-o out/demo/random-resnet18.onnx
	$(VENV)/bin/trtmass detect out/demo/dicom --model out/demo/random-resnet18.onnx --out out/demo/results \
		--overlay --truth out/demo/dicom/truth.csv -v
	@echo "JSON + overlays in out/demo/results (random weights: the pipeline runs, its findings mean nothing)"

bench: $(STAMP)
	$(PY) -m benchmarks.bench_graph_overhead --arch resnet50 --tile 768x640 --runs 5
	$(PY) -m benchmarks.bench_load_canvas --runs 7

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
