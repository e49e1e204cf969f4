# Shipmate:
#   docker build -t shipmate .
#   docker run -p 3000:3000 -v shipmate-data:/data --security-opt seccomp=unconfined --security-opt apparmor=unconfined --security-opt systempaths=unconfined shipmate
# The three --security-opt flags are what the sandbox needs inside a container: bubblewrap
# makes user, mount and PID namespaces (Docker's default seccomp profile refuses `unshare`,
# its AppArmor profile refuses `mount`) and mounts a fresh /proc for each command (refused
# while Docker masks parts of the container's /proc). Without them every task ends with the
# sandbox refusing to start (`shipmate doctor` inside the container says which is missing).
# Add -e SHIPMATE_PUBLIC_URL=https://… (the address GitHub reaches) before registering the App,
# and -e SHIPMATE_DATABASE_URL=postgresql+psycopg://… to use PostgreSQL (its driver is here).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md app.yml ./
COPY bot ./bot
COPY handlers ./handlers
# The postgres extra: the PostgreSQL driver (psycopg) and procrastinate's queue.
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[postgres]"

FROM python:3.11-slim
# bubblewrap: the sandbox; util-linux: unshare (doctor's check); git: checkouts; skopeo:
# repositories' `environment: {image: …}`; ca-certificates: TLS for GitHub and the model.
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap util-linux git skopeo ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 shipmate \
    && mkdir -p /data/runs && chown -R shipmate /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels "shipmate[postgres]" \
    && rm -rf /wheels \
    && python -c "import psycopg, procrastinate"
USER shipmate
WORKDIR /home/shipmate
ENV SHIPMATE_DATA_DIR=/data \
    SHIPMATE_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:3000/healthz').status != 200)"
CMD ["shipmate", "serve", "--host", "0.0.0.0", "--port", "3000"]
