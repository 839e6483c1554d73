# The newsmon Airflow image: Airflow's official image plus newsmon, installed
# from this source tree at build time (never at container start: no
# _PIP_ADDITIONAL_REQUIREMENTS, so every container runs the same bits).
#
#   docker compose build        (docker-compose.yml passes the same versions)
#
# AIRFLOW_VERSION must match the `airflow` extra in pyproject.toml;
# tests/airflow/test_compose.py checks that it does.
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}

ARG AIRFLOW_VERSION

# Only what the package needs: pyproject names README.md as its readme.
COPY --chown=airflow:0 pyproject.toml README.md /opt/newsmon/
COPY --chown=airflow:0 pipeline /opt/newsmon/pipeline

# Naming apache-airflow==AIRFLOW_VERSION in the same pip call is how Airflow's
# image docs say to add packages: the resolver may not up- or downgrade the
# Airflow the image was built with. The `airflow` extra brings the smtp and
# standard providers (already in the image) and the PostgreSQL drivers; the
# `lake` extra, lake mode (docker-compose.lake.yml): DuckLake and S3.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" "/opt/newsmon[airflow,lake]" \
    && python -c "import pipeline.run, pipeline.airflow_support"

# docker-compose.yml mounts the named volume newsmon-data here; Docker seeds a
# new volume with this folder's owner, so the airflow user can write to it.
RUN mkdir -p /opt/airflow/data /opt/airflow/newsmon
