# Three images from one file, all FROM the Apache Beam SDK image of exactly the pinned Beam and
# Python (the launcher's and the workers' Beam must match), all with bytecode compiled at install
# time (PYTHONDONTWRITEBYTECODE is set, so nothing would ever write a .pyc at run time):
#
#   worker      the worker set only (the core package: Beam, soundfile, soxr, numpy, ...): Dataflow's
#               --sdk_container_image. No TensorFlow, KFP, Vertex SDK or matplotlib.
#   template    worker + Google's Flex Template launcher binary: the Flex Template image
#               (`audioflow template build --image`); it is also a worker image, and the spec names
#               it as the workers' sdkContainerImage.
#   components  every extra (audioflow[all]): the KFP components' base_image on Vertex AI. The last
#               stage, so a plain `docker build .` builds it, as before.
#
# Build and push with `make image` (components), `make image-worker`, `make image-template`.
ARG PYTHON_VERSION=3.11
ARG BEAM_VERSION=2.77.0
# Google's launcher for Python Flex Templates; pin a dated tag for reproducible template images.
ARG TEMPLATE_LAUNCHER_IMAGE=gcr.io/dataflow-templates-base/python311-template-launcher-base:latest

FROM ${TEMPLATE_LAUNCHER_IMAGE} AS template_launcher

FROM apache/beam_python${PYTHON_VERSION}_sdk:${BEAM_VERSION} AS base
ARG BEAM_VERSION
ARG UV_VERSION=0.13.8
# What `audioflow template build` and `audioflow ingest --sdk_container_image` check against the
# launcher's Beam (when a local Docker engine can read it; see docs/dataflow.md).
LABEL org.apache.beam.sdk.version="${BEAM_VERSION}"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_COMPILE_BYTECODE=1 \
    TF_CPP_MIN_LOG_LEVEL=2
WORKDIR /opt/audioflow
RUN pip install "uv==${UV_VERSION}"
# Dependencies first (cached until uv.lock changes): exactly the locked versions, no dev tools.
COPY pyproject.toml uv.lock ./

FROM base AS worker
RUN uv export --frozen --no-dev --no-emit-project --no-hashes -o /tmp/requirements.txt \
    && uv pip install --system --no-cache --compile-bytecode -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt
# Then the project itself, without touching the dependencies installed above.
COPY README.md compile.py ./
COPY beam ./beam
COPY components ./components
COPY pipelines ./pipelines
RUN uv pip install --system --no-cache --no-deps --compile-bytecode . \
    && python -c "import audioflow.beam.job.graph, audioflow.beam.job.template_launcher"
# The Beam SDK image's entrypoint (/opt/apache/beam/boot) stays: Dataflow starts workers with it.

FROM worker AS template
COPY --from=template_launcher /opt/google/dataflow/python_template_launcher /opt/google/dataflow/python_template_launcher
# The launcher runs this file with the template parameters; a folder of its own, so that nothing
# next to it shadows a module on sys.path.
WORKDIR /template
RUN printf 'from audioflow.beam.job.template_launcher import main\n\nmain()\n' > main.py \
    && { python main.py 2>&1 || true; } | grep -q "template parameter manifest is required"
ENV FLEX_TEMPLATE_PYTHON_PY_FILE=/template/main.py

FROM base AS components
RUN uv export --frozen --no-dev --all-extras --no-emit-project --no-hashes -o /tmp/requirements.txt \
    && uv pip install --system --no-cache --compile-bytecode -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt
COPY README.md compile.py ./
COPY beam ./beam
COPY components ./components
COPY pipelines ./pipelines
RUN uv pip install --system --no-cache --no-deps --compile-bytecode . \
    && python -c "import audioflow.beam.job.graph, audioflow.components.ingest, audioflow.components.train"
# KFP on Vertex runs components with an explicit command, which overrides Beam's entrypoint.
