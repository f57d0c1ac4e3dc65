# One image for every Interlock service; compose.yaml picks the service with `command`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# pyproject.toml names README.md as the package's readme, so the build needs it too.
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY interlock ./interlock
COPY router ./router
COPY executor ./executor
COPY resumer ./resumer
COPY migrations ./migrations
RUN pip install . && rm -rf build *.egg-info

COPY examples ./examples

RUN useradd --system --uid 10001 --no-create-home interlock
USER interlock

# /metrics, /healthz and /readyz (INTERLOCK_TELEMETRY_PORT)
EXPOSE 9464

# exec form: interlock is PID 1 and receives SIGTERM itself, which starts the graceful stop
ENTRYPOINT ["interlock"]
CMD ["--help"]
