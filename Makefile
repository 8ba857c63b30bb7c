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
	mkdir -p out/demo/images
	$(VENV)/bin/trtmass export --init random --arch resnet18 --head-width 64 --seed 0 --tile 256x224 \
		-o out/demo/random-resnet18.onnx
	$(PY) -c "import numpy as np; from PIL import Image; r = np.random.default_rng(0); \
		[Image.fromarray((r.random((h, w)) * 65535).astype(np.uint16)).save(f'out/demo/images/img{i}.png') \
		 for i, (h, w) in enumerate([(1200, 900), (800, 1000)])]"
	$(VENV)/bin/trtmass detect out/demo/images --model out/demo/random-resnet18.onnx --out out/demo/results
	@echo "results: out/demo/results/*.json (random weights: the pipeline runs, the findings mean nothing)"

bench: $(STAMP)
	$(PY) benchmarks/bench_graph_overhead.py --arch resnet50 --tile 768x640 --runs 5

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
