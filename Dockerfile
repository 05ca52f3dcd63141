# OCS Prometheus exporter. Build: docker build -t ocs-exporter .
# Run:   docker run -d --name ocs-exporter --network host -v "$OCS_CONFIG_DIR":/config:ro ocs-exporter
# (docs/deployment.md#docker; the tests build and run this file with podman).
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OCS_CONFIG_DIR=/config

# A fixed mmap threshold keeps glibc from raising it after one large uncompressed scrape,
# so the multi-MB buffers of later scrapes are returned to the system when freed instead of
# staying in the heap.
ENV MALLOC_MMAP_THRESHOLD_=1048576

WORKDIR /src
COPY pyproject.toml setup.cfg README.md ./
COPY exporter ./exporter
RUN pip install . && rm -rf /src

# OCS images run as uid 9000; so does this one.
RUN groupadd --system --gid 9000 ocs \
    && useradd --system --uid 9000 --gid 9000 --no-create-home --shell /usr/sbin/nologin ocs
USER 9000:9000
WORKDIR /

EXPOSE 10020
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-m", "exporter.http.healthcheck"]
ENTRYPOINT ["ocs-exporter"]
