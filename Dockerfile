# syntax=docker/dockerfile:1
# The carepath image. It serves the API by default; `python -m worker.main` runs the worker.
# Both migrate the database at start. Settings come from CAREPATH_* variables (services/settings.py).

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md alembic.ini ./
COPY language language
COPY workflows workflows
COPY activities activities
COPY store store
COPY services services
COPY api api
COPY worker worker
COPY tools tools
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[postgres]'

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CAREPATH_PATHWAYS_DIR=/srv/carepath/pathways
# pip compiles bytecode while installing; keep it (no PYTHONDONTWRITEBYTECODE, no --no-compile):
# without it the workflow sandbox compiles the workflow module from source for every new run.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels 'carepath[postgres]' \
 && useradd --system --uid 10001 --home-dir /srv/carepath carepath
WORKDIR /srv/carepath
# What clinical managers and the site write: the pathways deployed when the API starts, and the
# instruments, team roster and crisis lexicon they refer to. Mount a hospital's own folder here
# instead (the API and the worker refuse to start, naming what is missing, if it is incomplete).
COPY pathways pathways
USER carepath
EXPOSE 8000
CMD ["uvicorn", "api.main:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000"]
