# One image for everything that runs in the cloud: the KFP components' base_image on Vertex AI and
# Dataflow's --sdk_container_image. It starts from the Apache Beam SDK image of exactly the pinned
# Beam and Python versions (the launcher's and the workers' Beam must match), then installs the
# locked dependencies and the project. Build and push with `make image IMAGE=...`.
ARG PYTHON_VERSION=3.11
ARG BEAM_VERSION=2.77.0
FROM apache/beam_python${PYTHON_VERSION}_sdk:${BEAM_VERSION}

ARG UV_VERSION=0.13.8
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    TF_CPP_MIN_LOG_LEVEL=2

WORKDIR /opt/audioflow
RUN pip install "uv==${UV_VERSION}"

# Dependencies first (cached until uv.lock changes): exactly the locked versions, no dev tools.
COPY pyproject.toml uv.lock ./
RUN uv export --frozen --no-dev --no-emit-project --no-hashes -o /tmp/requirements.txt \
    && uv pip install --system --no-cache -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then the project itself, without touching the dependencies installed above.
COPY README.md compile.py ./
COPY beam ./beam
COPY components ./components
COPY pipelines ./pipelines
RUN uv pip install --system --no-cache --no-deps . \
    && python -c "import audioflow.beam.job.graph, audioflow.components.ingest, audioflow.components.train"

# The Beam SDK image's entrypoint (/opt/apache/beam/boot) stays: Dataflow starts workers with it,
# and KFP on Vertex runs components with an explicit command, which overrides it.
