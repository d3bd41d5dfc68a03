FROM python:3.11-slim
WORKDIR /srv/hookline
COPY pyproject.toml README.md ./
COPY app ./app
COPY workers ./workers
COPY config ./config
RUN pip install --no-cache-dir .
ENV HOOKLINE_DATA_DIR=/var/lib/hookline
USER nobody
