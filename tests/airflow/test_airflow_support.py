"""pipeline.airflow_support: run ids, config lookup, and the mailer built from a connection."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("airflow", reason="needs the airflow extra: pip install -e '.[airflow]'")

from airflow_env import smtp_connection_json

from pipeline.airflow_support import (
    SEND_XCOM,
    ConnectionMailer,
    as_xcom,
    config_path,
    connection_mailer,
    mailer_from_connection,
    max_shards,
    pipeline_run_id,
    run_time,
    worker_processes_allowed,
)
from pipeline.alert import EmlMailer, SendResult
from pipeline.config import ConfigError, parse_settings
from pipeline.run import PollSummary, ProcessSummary, ShardPart
from pipeline.store import staging
from pipeline.store.load import LoadResult
from pipeline.store.plan import PlanResult


@pytest.mark.parametrize("airflow_run_id", [
    "scheduled__2025-01-01T00:05:00+00:00",
    "manual__2026-11-22T03:50:15.687410+00:00",
    "asset_triggered__2026-11-22T04:03:31.434687+00:00_iIbEcjSg",
    "../../etc",
    ".hidden",
    "a/b/c",
    "ünïcode run",
    "x" * 500,
])
def test_run_ids_are_staging_safe_and_stable(airflow_run_id: str, tmp_path: Path) -> None:
    run_id = pipeline_run_id(airflow_run_id)
    assert run_id == pipeline_run_id(airflow_run_id)  # a retry finds the same folder
    assert staging.run_dir(tmp_path, run_id).parent == tmp_path
    assert len(run_id) <= 100


def test_run_ids_differing_only_in_dropped_characters_stay_apart() -> None:
    assert pipeline_run_id("manual__a:b") != pipeline_run_id("manual__a+b")
    assert pipeline_run_id("manual__a/b") != pipeline_run_id("manual__a-b")
    with pytest.raises(ValueError, match="empty"):
        pipeline_run_id("")


def test_run_time_is_the_runs_own_clock() -> None:
    when = datetime(2025, 3, 1, 12, 5, tzinfo=UTC)
    assert run_time(SimpleNamespace(run_after=when)) == when


def test_the_main_script_is_hidden_from_worker_processes_and_put_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What a task started by the `airflow` console script has as __main__.
    script = types.ModuleType("__main__")
    script.__file__ = "/venv/bin/airflow"
    script.__spec__ = None
    monkeypatch.setitem(sys.modules, "__main__", script)
    with pytest.raises(RuntimeError), worker_processes_allowed():
        assert not hasattr(script, "__file__")
        raise RuntimeError("the stage failed")
    assert script.__file__ == "/venv/bin/airflow"
    # Started with `python -m`: multiprocessing skips __main__ already; untouched.
    script.__spec__ = types.SimpleNamespace(name="airflow.__main__")  # type: ignore[assignment]
    with worker_processes_allowed():
        assert script.__file__ == "/venv/bin/airflow"


def test_max_shards_from_the_environment() -> None:
    assert max_shards({}) == 4
    assert max_shards({"NEWSMON_MAX_SHARDS": "8"}) == 8
    for bad in ("0", "many"):
        with pytest.raises(ConfigError, match="NEWSMON_MAX_SHARDS"):
            max_shards({"NEWSMON_MAX_SHARDS": bad})


def test_config_from_the_environment_then_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert config_path({"NEWSMON_CONFIG": "/etc/newsmon.yaml"}) == Path("/etc/newsmon.yaml")
    monkeypatch.setenv("AIRFLOW_VAR_NEWSMON_CONFIG", "/srv/newsmon.yaml")
    assert config_path({}) == Path("/srv/newsmon.yaml")
    monkeypatch.delenv("AIRFLOW_VAR_NEWSMON_CONFIG")
    with pytest.raises(ConfigError, match=r"NEWSMON_CONFIG.*newsmon_config"):
        config_path({})


@dataclass
class Conn:
    host: str | None = "smtp.example.org"
    port: int | None = None
    login: str | None = None
    password: str | None = None
    extra_dejson: dict[str, Any] = field(default_factory=dict)


@pytest.mark.parametrize(("extras", "mode", "port"), [
    ({}, "smtps", 465),  # the smtp provider's default: SMTP over TLS
    ({"disable_ssl": True}, "smtp+starttls", 587),
    ({"disable_ssl": "true", "disable_tls": "True"}, "smtp", 25),  # from a URI: strings
    ({"disable_ssl": "false"}, "smtps", 465),  # bool("false") would be True
])
def test_transport_follows_the_smtp_provider(extras: dict[str, Any], mode: str,
                                             port: int) -> None:
    mailer = mailer_from_connection(Conn(extra_dejson=extras))
    assert (mailer.smtp.mode, mailer.smtp.port, mailer.smtp.host) == (
        mode, port, "smtp.example.org")


def test_login_password_timeout_and_port_come_from_the_connection() -> None:
    mailer = mailer_from_connection(Conn(port=2525, login="newsmon", password="pw",
                                         extra_dejson={"timeout": "12"}))
    assert (mailer.smtp.port, mailer.smtp.username, mailer.smtp.password) == (
        2525, "newsmon", "pw")
    assert mailer.smtp.timeout == 12.0


@pytest.mark.parametrize("extras", [{"disable_ssl": "maybe"}, {"timeout": "soon"}])
def test_bad_extras_are_config_errors(extras: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="SMTP connection extra"):
        mailer_from_connection(Conn(extra_dejson=extras))


def test_delivers_over_the_wire_with_the_connections_sender(smtp_server: Any) -> None:
    mailer = mailer_from_connection(Conn(
        host=smtp_server.host, port=smtp_server.port,
        extra_dejson={"disable_ssl": True, "disable_tls": True,
                      "from_email": "newsmon desk <desk@example.org>"}))
    message = EmailMessage()
    message["From"] = "newsmon <newsmon@localhost>"
    message["To"] = "analyst@example.org"
    message["Subject"] = "A story"
    message.set_content("body\n")
    mailer.send(message)
    mailer.close()
    (received,) = smtp_server.messages
    assert received["From"] == "newsmon desk <desk@example.org>"
    assert smtp_server.envelopes[0] == ("desk@example.org", ["analyst@example.org"])


def test_the_smtp_default_connection_is_used_when_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = parse_settings({"database": str(tmp_path / "news.duckdb")})
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_connection_json("mail.test", 1025, "pw"))
    mailer = connection_mailer(settings)
    assert isinstance(mailer, ConnectionMailer)
    assert (mailer.smtp.host, mailer.smtp.port, mailer.smtp.mode) == ("mail.test", 1025, "smtp")


def test_without_the_connection_the_config_decides(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_SMTP_DEFAULT", raising=False)
    settings = parse_settings({"database": str(tmp_path / "news.duckdb")})
    mailer = connection_mailer(settings)
    assert isinstance(mailer, EmlMailer)
    assert mailer.directory == tmp_path / "outbox"
    assert "smtp_default" in caplog.text and "outbox" in caplog.text


# -- XCom: each task's summary record by field name ----------------------------------------


@pytest.mark.parametrize("result", [
    PollSummary(run_id="r", feeds_polled=2, feeds_failed=1, entries_new=5, entries_retry=0),
    ShardPart(run_id="r", shard=1, shards=2),
    ProcessSummary(run_id="r", shard=1, entries=3, articles=2, rejected=1, retry=0),
    PlanResult(run_id="r", already_loaded=False, articles=2, stories=1, candidates=1),
    LoadResult(run_id="r", already_loaded=True, feeds=1, entries=3, articles_new=2,
               rejected=1, stories_new=1, stories_touched=0, alerts_queued=1),
], ids=lambda r: type(r).__name__)
def test_each_summary_record_is_its_tasks_xcom(result: Any) -> None:
    # The dataclass is the XCom's one definition: every field, by name, as is.
    xcom = as_xcom(result)
    assert xcom == {f.name: getattr(result, f.name) for f in fields(result)}
    assert type(result)(**xcom) == result  # and back, as a mapped task reads its part


def test_a_send_rounds_xcom_is_its_emails_not_its_times() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    result = SendResult(sent=2, failed=1, pending=3, retry=1, next_attempt_at=when,
                        stopped="the server closed the connection")
    assert as_xcom(result, only=SEND_XCOM) == {"sent": 2, "failed": 1, "pending": 3}
    with pytest.raises(TypeError, match=r"SendResult.next_attempt_at is a datetime"):
        as_xcom(result)


def test_an_xcom_never_carries_text_payloads() -> None:
    @dataclass(frozen=True)
    class Leaky:
        run_id: str
        titles: tuple[str, ...]

    with pytest.raises(TypeError, match=r"Leaky.titles is a tuple: an XCom carries ids and"):
        as_xcom(Leaky(run_id="r", titles=("a headline",)))
