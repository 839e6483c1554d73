"""Helpers shared by the Airflow tests: the newsmon config, the connection, DB counts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import yaml

TABLES = ("feeds", "entries", "articles", "article_tags", "removed_lines", "stories",
          "rejected", "alerts", "runs")
# A Jinja expression put into feed text, and the SMTP password it would reveal
# if anything rendered feed text as a template.
TEMPLATED = "{{ conn.smtp_default.password }}"
SECRET = "s3cret-smtp-password-never-in-mail"
RULE = {"name": "syria-foreign-forces", "query": "topic:syria AND topic:foreign-forces",
        "to": ["analyst@example.org"]}


def write_config(path: Path, *, feed_url: str, allow: str, database: Path,
                 **overrides: Any) -> Path:
    data: dict[str, Any] = {
        "database": str(database),
        "feeds": [{"url": feed_url, "name": "Seed outlets"}],
        "alerts": [RULE],
        "fetch": {"allow_private": [allow]},
        # Three entries per batch: the five seed entries fill two process
        # shards, so the dynamic task mapping really fans out.
        "process": {"workers": 1, "batch_size": 3},
    }
    data.update(overrides)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def smtp_connection_json(host: str, port: int, password: str) -> str:
    # The smtp provider's extras: aiosmtpd (like Mailpit) speaks plain SMTP
    # and offers no AUTH, so no login; the password is there to be leaked if
    # anything rendered feed text as a template.
    return json.dumps({
        "conn_type": "smtp", "host": host, "port": port, "password": password,
        "extra": {"disable_ssl": True, "disable_tls": True, "timeout": 10},
    })


def without_retries(dag: Any) -> Any:
    """dag.test() waits out every retry delay in-process; a failure should fail now."""
    for task in dag.tasks:
        task.retries = 0
    return dag


def task_states(run: Any) -> dict[tuple[str, int], str]:
    return {(ti.task_id, ti.map_index): str(ti.state) for ti in run.get_task_instances()}


def xcoms(run: Any) -> dict[tuple[str, int], Any]:
    """Every XCom of a finished run, by (task id, map index), from the metadata DB."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(XComModel.get_many(run_id=run.run_id, dag_ids=run.dag_id)).all()
        keys = {x.key for x in rows}
        values = {(x.task_id, x.map_index): XComModel.deserialize_value(x) for x in rows}
    assert keys <= {"return_value"}, keys  # one XCom per task, not one per dict key
    return values


def counts(database: Path) -> dict[str, int]:
    with duckdb.connect(str(database), read_only=True) as con:
        return {t: int(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0])  # type: ignore[index]
                for t in TABLES}


@dataclass
class NewsmonEnv:
    root: Path
    inbox: Any

    @property
    def config(self) -> Path:
        return self.root / "newsmon.yaml"

    @property
    def database(self) -> Path:
        return self.root / "data" / "news.duckdb"

    def connection_json(self, password: str) -> str:
        return smtp_connection_json(self.inbox.host, self.inbox.port, password)

    def write(self, site: Any, **overrides: Any) -> Path:
        return write_config(self.config, feed_url=site.feed_url, allow=f"127.0.0.1:{site.port}",
                            database=self.database, **overrides)

    def counts(self) -> dict[str, int]:
        return counts(self.database)
