"""docker-compose.lake.yml (lake mode over the main compose file) agrees with
the project: read as YAML, no Docker engine needed (issue 15)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from test_compose import AIRFLOW_SERVICES, host_path

from pipeline.config import load_settings

ROOT = Path(__file__).resolve().parents[2]


LAKE_CONFIG_IN_CONTAINER = "/opt/airflow/newsmon/newsmon-lake.yaml"


@pytest.fixture(scope="module")
def lake_services() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.lake.yml").read_text("utf-8"))
    found: dict[str, Any] = data["services"]
    return found


def _merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """One service of ``docker compose -f docker-compose.yml -f
    docker-compose.lake.yml``, as compose merges them: mappings (environment,
    depends_on) key by key, volumes by their container path, the rest replaced."""
    out = dict(base)
    for key, value in override.items():
        if key in ("environment", "depends_on"):
            out[key] = {**base.get(key, {}), **value}
        elif key == "volumes":
            by_target = {v.split(":")[1]: v for v in base.get(key, [])}
            by_target.update({v.split(":")[1]: v for v in value})
            out[key] = list(by_target.values())
        else:
            out[key] = value
    return out


@pytest.fixture(scope="module")
def stack(lake_services: dict[str, Any]) -> dict[str, Any]:
    main = yaml.safe_load((ROOT / "docker-compose.yml").read_text("utf-8"))["services"]
    return {name: _merged(main.get(name, {}), lake_services.get(name, {}))
            for name in set(main) | set(lake_services)}


def test_the_lake_adds_a_catalog_an_s3_store_and_its_bucket(
        lake_services: dict[str, Any]) -> None:
    assert set(lake_services) == AIRFLOW_SERVICES | {"lake-catalog", "minio", "minio-init"}
    assert lake_services["lake-catalog"]["image"].startswith("postgres:")
    assert lake_services["minio"]["image"].startswith("minio/minio:")
    assert "mc mb --ignore-existing lake/newsmon" in "\n".join(
        lake_services["minio-init"]["command"])


def test_every_airflow_service_reads_the_lake_config_with_secrets_from_the_environment(
        lake_services: dict[str, Any], stack: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES:
        service = lake_services[name]
        # No mount of its own: the main file mounts the deploy/ folder, and
        # NEWSMON_CONFIG names the lake's file in it.
        assert "volumes" not in service, name
        assert set(service["environment"]) == {"PGPASSWORD", "AWS_ACCESS_KEY_ID",
                                               "AWS_SECRET_ACCESS_KEY", "NEWSMON_CONFIG"}
        assert service["depends_on"]["lake-catalog"]["condition"] == "service_healthy"
        assert service["depends_on"]["minio-init"]["condition"] == (
            "service_completed_successfully")
        # What the container sees once compose has merged the two files.
        merged = stack[name]
        config = merged["environment"]["NEWSMON_CONFIG"]
        assert config == LAKE_CONFIG_IN_CONTAINER, name
        assert host_path(merged, config) == ROOT / "deploy" / "newsmon-lake.yaml", name
        assert load_settings(host_path(merged, config)).store.mode == "lake"
        assert merged["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert {"redis", "postgres", "lake-catalog", "minio-init"} <= set(
            merged["depends_on"]), name


def test_the_lake_config_points_at_the_compose_services(
        lake_services: dict[str, Any]) -> None:
    settings = load_settings(ROOT / "deploy" / "newsmon-lake.yaml")
    store = settings.store
    assert store.mode == "lake"
    assert store.catalog is not None and "host=lake-catalog" in store.catalog
    catalog_env = lake_services["lake-catalog"]["environment"]
    assert f"dbname={catalog_env['POSTGRES_DB']}" in store.catalog
    assert f"user={catalog_env['POSTGRES_USER']}" in store.catalog
    assert store.s3.endpoint == "minio:9000" and 9000 in lake_services["minio"]["expose"]
    assert store.data_path is not None and store.data_path.startswith("s3://newsmon/")
    assert store.staging_url is not None and store.staging_url.startswith("s3://newsmon/")
    main = load_settings(ROOT / "deploy" / "newsmon.yaml")
    assert settings.model_dump(exclude={"store"}) == main.model_dump(exclude={"store"})


def test_the_image_has_the_lake_extra() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text("utf-8")
    assert '"/opt/newsmon[airflow,lake]"' in dockerfile
