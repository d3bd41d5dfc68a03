FROM python:3.11-slim
# A dedicated unprivileged user, and the data directory it writes to: beat keeps its
# schedule file there, and the workers and the API share the metrics directory below it
# (HOOKLINE_METRICS_DIR in docker-compose.yml, a volume mounted over it).
RUN useradd --system --user-group --uid 10001 --home-dir /var/lib/hookline \
        --no-create-home --shell /usr/sbin/nologin hookline \
    && mkdir -p /var/lib/hookline/metrics \
    && chown -R hookline:hookline /var/lib/hookline
WORKDIR /srv/hookline
COPY pyproject.toml README.md ./
COPY app ./app
COPY workers ./workers
COPY config ./config
# `hookline demo` runs the CrewPass reference domain.
COPY crewpass ./crewpass
RUN pip install --no-cache-dir .
ENV HOOKLINE_DATA_DIR=/var/lib/hookline
USER hookline
# hookline api (management API, /console, /metrics), hookline flower
EXPOSE 8000 5555
