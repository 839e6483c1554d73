"""A lake for a test: a fresh PostgreSQL catalog database (created with a
unique name and dropped after) at 127.0.0.1:5432, data files in a folder or
on a moto S3 server started on 127.0.0.1."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

_USERS = ("postgres", "root")


def _admin() -> tuple[Any, str]:
    """An autocommit connection to the server's maintenance database, and the
    user that worked; skips the test (saying why) when no PostgreSQL answers."""
    import psycopg2

    problems = []
    for user in _USERS:
        for dbname in ("postgres", user):
            try:
                pg = psycopg2.connect(host="127.0.0.1", port=5432, user=user, dbname=dbname,
                                      connect_timeout=5)
            except psycopg2.OperationalError as exc:
                problems.append(str(exc).strip().splitlines()[0])
                continue
            pg.autocommit = True
            return pg, user
    pytest.skip(f"no PostgreSQL at 127.0.0.1:5432 for the lake's catalog ({problems[-1]})")


@contextmanager
def catalog_database() -> Iterator[str]:
    """A new, empty catalog database; yields its libpq DSN; dropped after."""
    from pipeline.store.lake import scratch_catalog

    pg, user = _admin()
    pg.close()
    server = f"dbname=postgres host=127.0.0.1 port=5432 user={user}"
    with scratch_catalog(server, prefix="newsmon_test") as dsn:
        yield dsn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def s3_server(bucket: str = "newsmon") -> Iterator[str]:
    """moto's S3 on 127.0.0.1 with ``bucket`` made; yields ``host:port``. The
    keys moto accepts are put in the environment (boto3 and DuckDB read them)."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ["AWS_ACCESS_KEY_ID"] = "testing"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
    try:
        boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}",
                     region_name="us-east-1").create_bucket(Bucket=bucket)
        yield f"127.0.0.1:{port}"
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def store_section(dsn: str, data_path: str | Path, *, endpoint: str | None = None,
                  staging_url: str | None = None) -> dict[str, Any]:
    """The config's ``store:`` section for a lake."""
    section: dict[str, Any] = {"mode": "lake", "catalog": dsn, "data_path": str(data_path)}
    if staging_url:
        section["staging_url"] = staging_url
    if endpoint:
        section["s3"] = {"endpoint": endpoint, "use_ssl": False, "url_style": "path"}
    return section


def host_task(settings_json: str, task: str, run_id: str, shard: int = 0,
              shards: int = 1) -> int:
    """One pipeline task as a host runs it (in a process of its own): the
    stage functions the DAG calls, on this host's settings."""
    from pipeline import run
    from pipeline.config import Settings

    settings = Settings.model_validate_json(settings_json)
    if task == "poll":
        return run.poll_stage(settings, run_id).entries_new
    if task == "shards":
        return run.shard_count(settings, run_id, shards)
    if task == "process":
        return run.process_stage(settings, run_id, shard=shard, shards=shards,
                                 workers=1).articles
    if task == "cluster":
        return run.cluster_stage(settings, run_id).articles
    if task == "load":
        return run.load_stage(settings, run_id).articles_new
    if task == "send":
        return run.send_stage(settings).sent
    raise ValueError(f"no task {task!r}")
