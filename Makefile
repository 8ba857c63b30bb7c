# One command per job on a fresh machine (see README.md):
#   make demo   set up, then run the pipeline end to end on generated images
#   make test   set up, then lint, type-check and run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-train-dev

.PHONY: setup dicom-tools serve-tools trt-stubs test lint typecheck pytest pytest-runtime demo demo-model demo-cv bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[train,eval,dev,triton]"
	touch $(STAMP)

setup: $(STAMP)

# Third-party DICOM programs the tests use (Debian: dicom3tools and dcmtk validate and talk DICOM,
# orthanc and orthanc-dicomweb are the PACS of the DICOM node tests; the tests start and stop their
# own Orthanc on free loopback ports).  Installed when this runs as root with apt-get; otherwise
# those tests skip and say why.
DICOM_PACKAGES := dicom3tools dcmtk orthanc orthanc-dicomweb
dicom-tools:
	@if ! command -v dciodvfy >/dev/null || ! command -v dsrdump >/dev/null || ! command -v Orthanc >/dev/null; then \
		if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DICOM_PACKAGES)) \
				>/tmp/trtmass-apt.log 2>&1 || echo "warning: $(DICOM_PACKAGES) not installed (/tmp/trtmass-apt.log)"; \
		else echo "note: install $(DICOM_PACKAGES) to run the DICOM validation and DICOM node tests"; fi; \
	fi

# The tritonserver binary and Python backend of the nvidia-pytriton wheel, for `trtmass serve` and its tests.
# --no-deps: its numpy<2 pin is for PyTriton's own proxy, which trt_mass does not use (trt_mass.serving.server).
PYTRITON := nvidia-pytriton==0.7.0
serve-tools: $(STAMP)
	@$(PY) -c "import importlib.util as u, sys; sys.exit(0 if u.find_spec('pytriton') else 1)" 2>/dev/null || \
		$(PY) -m pip install --quiet --disable-pip-version-check --no-deps $(PYTRITON) || \
		echo "warning: $(PYTRITON) not installed: the Triton server tests will skip"

lint: $(STAMP)
	$(VENV)/bin/ruff check trt_mass tests benchmarks

# TensorRT 11.4's real Python bindings (PyPI) with stand-in libraries, and their stubs, in build/trt-stubs
# (git-ignored): the TensorRT layer is type-checked against them and tests/engine/test_tensorrt_api.py imports them.
trt-stubs: $(STAMP)
	$(PY) -m tests.tensorrt_api.build build/trt-stubs

typecheck: $(STAMP) trt-stubs
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --config-file tests/tensorrt_api/mypy.ini

pytest: $(STAMP) dicom-tools serve-tools trt-stubs
	$(PY) -m pytest -q

# The torch-free tests once more on a runtime-only install (no torch, no onnx): what detect and watch need.
RUNTIME_TEST_VENV ?= .venv-runtime-test
RUNTIME_TEST_STAMP := $(RUNTIME_TEST_VENV)/.installed-runtime-dev

$(RUNTIME_TEST_STAMP): pyproject.toml
	$(PYTHON) -m venv $(RUNTIME_TEST_VENV)
	$(RUNTIME_TEST_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(RUNTIME_TEST_STAMP)

pytest-runtime: $(RUNTIME_TEST_STAMP) dicom-tools
	@$(RUNTIME_TEST_VENV)/bin/python -c "import importlib.util as u, sys; sys.exit('torch in the runtime-only venv' if u.find_spec('torch') else 0)"
	$(RUNTIME_TEST_VENV)/bin/python -m pytest -q -m "not train"

test: lint typecheck pytest pytest-runtime

# The main job needs only the runtime (no torch): its own small venv.
RUNTIME_VENV ?= .venv-runtime
RUNTIME_STAMP := $(RUNTIME_VENV)/.installed-runtime

$(RUNTIME_STAMP): pyproject.toml
	$(PYTHON) -m venv $(RUNTIME_VENV)
	$(RUNTIME_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e .
	touch $(RUNTIME_STAMP)

demo: $(RUNTIME_STAMP)
	$(RUNTIME_VENV)/bin/trtmass synth out/demo/dicom --count 4 --seed 7 --scale 0.25
	$(RUNTIME_VENV)/bin/trtmass detect out/demo/dicom --out out/demo/results --overlay \
		--truth out/demo/dicom/truth.csv --dicom-out sr,gsps,sc -v
	@$(RUNTIME_VENV)/bin/python -c "import json, glob; [print(r['image']['source'], r['image']['laterality'], \
		r['image']['view'], [(f['x1'], f['y1'], f['x2'], f['y2'], f['score']) for f in r['findings'] if f['shown']]) \
		for r in map(lambda p: json.load(open(p)), sorted(glob.glob('out/demo/results/*.json')))]"
	@echo "findings shown at the model's 1-FPPI operating point (the JSON lists every candidate, each with 'shown')"
	@echo "overlays (findings red, truth green): out/demo/results/*.overlay.png; DICOM SR/GSPS/SC beside them"

# How the bundled demo model was made; see trt_mass/data/MODEL_CARD.md.  The shipped weights are fold 0 of the
# cross-validation "pretrain-longer-cpu" (benchmarks/RESULTS.md, 2026-11-28, 2-core CPU, by epochs): 20 epochs
# of pre-training on 240 phantoms, 22 more on 480 with hard negatives, then 8 epochs of fine-tuning on MIAS
# folds 2-4 and the phantoms, the epoch (6) and the operating points taken on MIAS fold 1.  This target runs
# the same commands (torch on the CPU: the same kind of model, bytes not promised).  About 1 h 50 min on
# 2 CPU cores: pre-training with the phantoms ~30 min, continued pre-training ~57 min (2.6 min per epoch), fine-tuning and
# evaluation of fold 0 ~17 min (measured 2026-11-27/28, each stage in its own run, AVX-512 CPU).  On an AVX2-only
# CPU a pre-training epoch takes ~300 s instead of ~85 s: roughly 6-7 h (benchmarks/RESULTS.md, "An AVX2-only CPU").
demo-model: $(STAMP)
	$(PY) -m benchmarks.bench_demo_cv --only-folds 0 --batch-size 16 --pretrain-epochs 20 --continue-epochs 22 \
		--epochs 8 --workdir out/demo-model --tag demo-model --out out/demo-model/demo_cv.json \
		--results-md out/demo-model/RESULTS.md
	cp out/demo-model/fold0/model.onnx trt_mass/data/demo-model.onnx
	# the same operating points again, with the data named as from the repository (not this machine's path)
	$(PY) -m trt_mass.cli eval --model trt_mass/data/demo-model.onnx --data mias:../shared/data/mini-mias-train \
		--folds 5 --fold 1 --write-operating-points --bootstrap 0 --out out/demo-model/operating-points

# The recipe cross-validated on every mini-MIAS fold (issue #18): pre-training on phantoms, fine-tuning per
# fold with the epoch and the operating points from the next fold; about 70 min on 2 CPU cores.
demo-cv: $(STAMP)
	$(PY) -m benchmarks.bench_demo_cv --epochs 6 --pretrain-epochs 6

bench: $(STAMP)
	$(PY) -m benchmarks.bench_graph_overhead --arch resnet50 --tile 768x640 --runs 5
	$(PY) -m benchmarks.bench_load_canvas --runs 7
	$(PY) -m benchmarks.bench_precision
	$(PY) -m benchmarks.bench_winograd --repeats 8
	$(PY) -m benchmarks.bench_pipeline_vs_eager --runs 7 --synthetic 3

clean:
	rm -rf out build .pytest_cache .mypy_cache .ruff_cache
