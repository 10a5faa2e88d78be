# posthouse: one image for every process (api, worker, inbound, migrate).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY src ./src
COPY migrations ./migrations
# Editable install: `posthouse migrate` finds alembic.ini and migrations/ beside src/.
RUN pip install -e . \
    && useradd --system --home-dir /app --shell /usr/sbin/nologin posthouse \
    && mkdir -p /app/var \
    && chown posthouse /app/var

USER posthouse
EXPOSE 8025 2525
CMD ["posthouse", "serve", "--host", "0.0.0.0", "--port", "8025"]
