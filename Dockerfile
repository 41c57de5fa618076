# syntax=docker/dockerfile:1
# The carepath image. It serves the API by default (`python -m api`, JSON logs); `python -m worker.main`
# runs the worker and `carepath db upgrade` migrates the database, which is done once, before either
# starts (docker-compose.yml's `migrate` service). Settings come from CAREPATH_* variables
# (services/settings.py); what the image holds is checked by tests/test_deploy_files.py.

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
# The wheel carries each package's files besides code too (pyproject's package-data): the database
# migrations, the form and preview templates.
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
# instruments, team roster and crisis lexicon they refer to. A hospital mounts its own folder here
# instead, read-only (docs/deploy.md); the API and the worker refuse to start, naming what is missing,
# if it is incomplete. Licensed instrument text (pathways/local) is never in the image: it comes with
# the hospital's folder.
COPY pathways pathways
USER carepath
# The API; the worker's metrics (carepath's, the Temporal SDK's) when CAREPATH_METRICS_PORT and
# CAREPATH_TEMPORAL_METRICS_PORT are set to these.
EXPOSE 8000 9464 9465
CMD ["python", "-m", "api"]
