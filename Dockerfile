# Shipmate: `docker build -t shipmate . && docker run -p 3000:3000 -v shipmate-data:/data shipmate`
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md app.yml ./
COPY bot ./bot
COPY handlers ./handlers
# With PostgreSQL's driver and procrastinate: the same image runs on SQLite or PostgreSQL.
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[postgres]"

FROM python:3.11-slim
# bubblewrap: the sandbox; git: checkouts. Run the container with user namespaces
# allowed (e.g. --security-opt seccomp=unconfined) or the sandbox refuses to start (exit 125).
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap git ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 shipmate \
    && mkdir -p /data/runs && chown -R shipmate /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER shipmate
WORKDIR /home/shipmate
ENV SHIPMATE_DATA_DIR=/data \
    SHIPMATE_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:3000/healthz').status != 200)"
CMD ["shipmate", "serve", "--host", "0.0.0.0", "--port", "3000"]
