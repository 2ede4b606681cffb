# syntax=docker/dockerfile:1
# edgeproxy container image: an LLM API sidecar proxy.
#
#   docker build -t edgeproxy:0.1.0 .
#   docker build --build-arg EXTRAS=semantic -t edgeproxy:0.1.0-semantic .   # + local embeddings
#   docker run --rm -p 127.0.0.1:8080:8080 -p 127.0.0.1:9090:9090 \
#       -e EDGEPROXY_HOST=0.0.0.0 -e OPENAI_API_KEY edgeproxy:0.1.0
#
# The data listener binds 127.0.0.1 by default (a sidecar shares its pod's loopback with the
# application), so outside Kubernetes set EDGEPROXY_HOST=0.0.0.0 to publish it as above.
# With no config file the proxy runs on its embedded defaults (`edgeproxy print-default-config`).
# EDGEPROXY_CONFIG is deliberately not set here: the CLI reads that file whenever the variable is
# set, so it belongs where the file is mounted (the Helm chart sets it to
# /etc/edgeproxy/edgeproxy.yaml next to its ConfigMap), or pass `serve --config PATH`.

ARG PYTHON_IMAGE=python:3.11-slim
# Optional extras, comma-separated: semantic (local embeddings), bedrock (the AWS chain).
ARG EXTRAS=""

# --- build: the edgeproxy wheel and wheels of all its dependencies ---------------------------
FROM ${PYTHON_IMAGE} AS build
ARG EXTRAS
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml setup.cfg README.md ./
COPY edgeproxy/ edgeproxy/
RUN pip wheel --wheel-dir /wheels ".${EXTRAS:+[$EXTRAS]}"

# --- runtime: the installed wheels, nothing else ---------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG PYTHON_IMAGE
ARG EXTRAS
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="edgeproxy" \
      org.opencontainers.image.description="LLM API sidecar proxy: OpenAI and Anthropic dialects, streaming, routing" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Offline install from the build stage's wheels (bind-mounted, so no wheel stays in a layer);
# pip compiles the bytecode now, so a read-only root filesystem costs nothing at start-up.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels "edgeproxy${EXTRAS:+[$EXTRAS]}" \
    && groupadd --system --gid 10001 edgeproxy \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin edgeproxy

USER 10001:10001
# 8080: data listener (loopback unless EDGEPROXY_HOST says otherwise); 9090: admin, /healthz /readyz
EXPOSE 8080 9090
# The proxy drains in-flight requests for server.shutdown_grace (20s) on SIGTERM.
STOPSIGNAL SIGTERM
ENTRYPOINT ["edgeproxy"]
CMD ["serve"]
