"""docker-compose.lake.yml (lake mode over the main compose file) agrees with
the project: read as YAML, no Docker engine needed (issue 15)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from test_compose import AIRFLOW_SERVICES, CONFIG_IN_CONTAINER

from pipeline.config import load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lake_services() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.lake.yml").read_text("utf-8"))
    found: dict[str, Any] = data["services"]
    return found


def test_the_lake_adds_a_catalog_an_s3_store_and_its_bucket(
        lake_services: dict[str, Any]) -> None:
    assert set(lake_services) == AIRFLOW_SERVICES | {"lake-catalog", "minio", "minio-init"}
    assert lake_services["lake-catalog"]["image"].startswith("postgres:")
    assert lake_services["minio"]["image"].startswith("minio/minio:")
    assert "mc mb --ignore-existing lake/newsmon" in "\n".join(
        lake_services["minio-init"]["command"])


def test_every_airflow_service_reads_the_lake_config_with_secrets_from_the_environment(
        lake_services: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES:
        service = lake_services[name]
        # The same container path as the main file: this mount replaces that one.
        assert service["volumes"] == [f"./deploy/newsmon-lake.yaml:{CONFIG_IN_CONTAINER}:ro"]
        assert set(service["environment"]) == {"PGPASSWORD", "AWS_ACCESS_KEY_ID",
                                               "AWS_SECRET_ACCESS_KEY"}
        assert service["depends_on"]["lake-catalog"]["condition"] == "service_healthy"
        assert service["depends_on"]["minio-init"]["condition"] == (
            "service_completed_successfully")


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
