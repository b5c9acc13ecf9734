# Two commands: `make demo` and `make test`. Everything else is set up on the way, from the lock file.
PYTHON ?= python3.11
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
SYNCED := $(VENV)/.synced
DEMO := build/demo
export UV_PYTHON_DOWNLOADS := never
# Bytecode is compiled at install time: this environment (and the Dockerfile) set PYTHONDONTWRITEBYTECODE,
# so without it every process compiles TensorFlow, Beam and KFP from source on each start.
export UV_COMPILE_BYTECODE := 1

.PHONY: setup demo test test-slow lint format compile bench bench-smoke image image-worker image-template clean gcs-emulator chromium

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

# Installs exactly what uv.lock pins (the project itself editable, with every extra) into .venv.
$(SYNCED): $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --all-extras --python $(PYTHON)
	touch $@

setup: $(SYNCED)

# The main job on embedded defaults: generate labelled demo audio, ingest it with the Beam job, run the
# whole KFP pipeline (ingest -> train) locally with kfp.local, then verify the dataset and write its report.
demo: setup
	$(BIN)/audioflow demo-data $(DEMO)
	$(BIN)/audioflow ingest --manifest $(DEMO)/labels.csv --output $(DEMO)/dataset \
		--splits train=0.8,validation=0.1,test=0.1 --max-rejected-fraction 0.05 --overwrite
	$(BIN)/audioflow run-local --manifest-uri $(DEMO)/labels.csv --pipeline-root $(DEMO)/pipeline-runs \
		--param max_rejected_fraction=0.05
	$(BIN)/audioflow inspect $(DEMO)/dataset --verify --html $(DEMO)/report.html

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Headless Chromium renders the HTML report in tests/beam/tools/test_report.py; installed (Debian package, as root) if missing.
chromium:
	command -v chromium >/dev/null 2>&1 || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

# Tests run in one process per core (at most 4), a test file to a process so that its module
# fixtures (corpora, compiled components) are built once; on 2 cores that halves the time of one
# process. `make test TEST_PROCESSES=0` runs them in this process.
TEST_PROCESSES ?= auto
test: setup chromium
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -m "not slow" -n $(TEST_PROCESSES) --maxprocesses 4 --dist loadfile

test-slow: setup
	$(BIN)/pytest -m slow

clean:
	rm -rf build .pytest_cache .ruff_cache

# Benchmarks: the full run writes bench/RESULTS.md; the smoke run takes seconds and runs in CI.
bench: setup
	$(BIN)/python bench/run.py

bench-smoke: setup
	$(BIN)/python bench/run.py --smoke

# The container images (need a Docker engine and `gcloud auth configure-docker REGION-docker.pkg.dev`);
# one Dockerfile, three targets (see its header). IMAGE defaults to the name the components are
# compiled with; the worker and template images are named after it (audioflow-worker:, audioflow-template:).
IMAGE ?= $(shell $(BIN)/python -c "from audioflow.beam.settings import load_env; load_env(); from audioflow.components.image import component_image; print(component_image())" 2>/dev/null)
WORKER_IMAGE ?= $(shell echo '$(IMAGE)' | sed 's|audioflow:\([^:/]*\)$$|audioflow-worker:\1|')
TEMPLATE_IMAGE ?= $(shell echo '$(IMAGE)' | sed 's|audioflow:\([^:/]*\)$$|audioflow-template:\1|')
image: setup
	docker build --target components -t $(IMAGE) .
	docker push $(IMAGE)

image-worker: setup
	docker build --target worker -t $(WORKER_IMAGE) .
	docker push $(WORKER_IMAGE)

# The Flex Template image; with TEMPLATE=gs://bucket/audioflow-ingest.json it also writes the spec.
image-template: setup
	docker build --target template -t $(TEMPLATE_IMAGE) .
	docker push $(TEMPLATE_IMAGE)
	$(if $(TEMPLATE),$(BIN)/audioflow template build --image $(TEMPLATE_IMAGE) --template $(TEMPLATE))

# A local Cloud Storage for trying gs:// without a project: prints the variables to export in another
# shell, then serves in the foreground until Ctrl-C. GCS_PORT=9023 BUCKETS="a b" to change the defaults.
GCS_PORT ?= 9023
BUCKETS ?= audioflow-local
gcs-emulator: setup
	$(BIN)/python tests/helpers/gcs_emulator.py --port $(GCS_PORT) $(foreach b,$(BUCKETS),--bucket $(b))
