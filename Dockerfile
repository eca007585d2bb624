# syntax=docker/dockerfile:1
# The webtext image (CLI, pipeline, trainer) and, built from it, a Beam SDK worker-pool image.
# Versions agree with pyproject.toml; tests/test_compose.py checks that they do.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
ARG BEAM_VERSION=2.77.0

# Beam's Python SDK container only lends its boot binary: it turns our image into an SDK worker
# pool that already has our DoFns installed (workers import them by module).
FROM apache/beam_python3.11_sdk:${BEAM_VERSION} AS beam-sdk

FROM ${PYTHON_IMAGE} AS webtext
ARG TORCH_VERSION=2.13.0
# CPU wheels by default. For GPUs, build with a CUDA index, e.g.
#   docker compose build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu126
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
# torch first, from its own index: a plain `pip install torch` pulls a multi-GB CUDA build.
RUN pip install --index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}"
COPY . /app
RUN pip install /app && webtext --help > /dev/null
ENTRYPOINT ["webtext"]
CMD ["--help"]

FROM webtext AS sdk-worker
COPY --from=beam-sdk /opt/apache/beam /opt/apache/beam
ENTRYPOINT ["/opt/apache/beam/boot"]
CMD ["--worker_pool"]
