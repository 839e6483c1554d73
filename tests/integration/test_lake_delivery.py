"""Alert delivery in lake mode (pipeline.store.delivery): the outbox rows are
the lake's, their delivery state is in the catalog's PostgreSQL, claimed with
FOR UPDATE SKIP LOCKED; the sender never writes the lake. Real PostgreSQL,
real SMTP (aiosmtpd)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import yaml
from support import factories as f
from support import lake

from integration.test_load import reports
from pipeline import alert, store
from pipeline.config import Settings
from pipeline.run import send_stage
from pipeline.store import delivery
from pipeline.store.backend import backend, open_store
from pipeline.store.lake import LakeBackend
from pipeline.store.load import load

RECIPIENTS = [f"analyst{n:02d}@example.org" for n in range(12)]


@pytest.fixture
def catalog() -> Iterator[str]:
    with lake.catalog_database() as dsn:
        yield dsn


def loaded_lake(tmp_path: Path, dsn: str, smtp: Any | None = None) -> Settings:
    """A lake with one Syria story loaded: one outbox row per recipient."""
    extra = {"smtp": {"url": smtp.url}} if smtp is not None else {}
    settings = f.settings(tmp_path, store=lake.store_section(dsn, tmp_path / "lake-data"),
                          alerts=[{"name": "syria", "query": "topic:syria", "to": RECIPIENTS}],
                          **extra)
    f.stage(settings, "run-1", reports())
    with backend(settings).writer() as con:
        assert load(con, settings, "run-1").alerts_queued == len(RECIPIENTS)
    return settings


def lake_snapshots(dsn: str) -> int:
    with psycopg2.connect(dsn) as pg, pg.cursor() as cur:
        cur.execute("SELECT count(*) FROM ducklake_snapshot")
        return int(cur.fetchone()[0])


def deliveries(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg2.connect(dsn) as pg, pg.cursor() as cur:
        cur.execute(f"SELECT recipient, status, attempts, message_id IS NOT NULL"
                    f" FROM {delivery.TABLE} ORDER BY recipient")
        return list(cur.fetchall())


def two_senders(settings: Any) -> list[alert.SendResult]:
    """What two senders at once (threads, each its own rounds) sent."""
    start = threading.Barrier(2)
    results: list[alert.SendResult] = []

    def sender() -> None:
        start.wait()
        results.append(send_stage(settings))

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_two_concurrent_senders_deliver_each_alert_exactly_once(
        tmp_path: Path, catalog: str, smtp_server: Any) -> None:
    settings = loaded_lake(tmp_path, catalog, smtp_server)
    before = lake_snapshots(catalog)
    results = two_senders(settings)
    assert len(results) == 2 and sum(r.sent for r in results) == len(RECIPIENTS)
    got = sorted(str(m["To"]) for m in smtp_server.messages)
    assert got == RECIPIENTS  # each once
    assert len({m["Message-ID"] for m in smtp_server.messages}) == len(RECIPIENTS)
    assert deliveries(catalog) == [(r, "sent", 1, True) for r in RECIPIENTS]
    assert send_stage(settings).sent == 0
    assert len(smtp_server.messages) == len(RECIPIENTS)
    assert lake_snapshots(catalog) == before  # the senders never committed to the lake


def test_senders_share_a_backlog_in_rounds_of_max_per_round_each_alert_once(
        tmp_path: Path, catalog: str, smtp_server: Any) -> None:
    """A round claimed every due row at once: one host held a whole backlog
    under one lease while the others found nothing. A round now claims
    smtp.max_per_round emails; two senders share the 12 in rounds of 5 at
    most, and each goes out once."""
    settings = loaded_lake(tmp_path, catalog, smtp_server)
    assert settings.smtp is not None
    settings = settings.model_copy(update={
        "smtp": settings.smtp.model_copy(update={"max_per_round": 5})})
    pg = delivery.connect(catalog)
    try:
        with open_store(settings, read_only=True) as con:
            outbox = delivery.PgOutbox(pg)
            outbox.add(delivery.lake_outbox_rows(con))
            first = alert.send_pending(con, settings, alert.mailer_for(settings),
                                       outbox=outbox, now=outbox.now())
        assert (first.sent, first.pending, first.more) == (5, 7, True)
    finally:
        pg.close()

    results = two_senders(settings)
    assert len(results) == 2 and sum(r.sent for r in results) == len(RECIPIENTS) - 5
    assert sorted(str(m["To"]) for m in smtp_server.messages) == RECIPIENTS  # each once
    assert deliveries(catalog) == [(r, "sent", 1, True) for r in RECIPIENTS]


def test_a_sent_mark_made_twice_counts_one_attempt(tmp_path: Path, catalog: str) -> None:
    """A mark whose session was cut off after its commit runs again on a
    new one (PgOutbox._run): the delivery it marks is counted once."""
    settings = loaded_lake(tmp_path, catalog)
    pg = delivery.connect(catalog)
    try:
        with open_store(settings, read_only=True) as con:
            outbox = delivery.PgOutbox(pg)
            outbox.add(delivery.lake_outbox_rows(con))
        now = outbox.now()
        claimed, _ = outbox.claim(now, now + timedelta(minutes=10), "me", ignore_backoff=False)
        key = claimed[0].key
        outbox.mark_sent([key], "<id@newsmon>", now)
        outbox.mark_sent([key], "<id@newsmon>", now)
        assert [row for row in deliveries(catalog) if row[0] == key[2]] == [
            (key[2], "sent", 1, True)]
    finally:
        pg.close()


def test_a_claim_skips_rows_another_sender_has_locked(tmp_path: Path, catalog: str) -> None:
    settings = loaded_lake(tmp_path, catalog)
    pg = delivery.connect(catalog)
    with open_store(settings, read_only=True) as con:
        outbox = delivery.PgOutbox(pg)
        assert outbox.add(delivery.lake_outbox_rows(con)) == len(RECIPIENTS)
        assert outbox.add(delivery.lake_outbox_rows(con)) == 0  # keys copied once
    other = psycopg2.connect(catalog)
    try:
        with other.cursor() as cur:  # another sender's claim, its transaction still open
            cur.execute(f"SELECT recipient FROM {delivery.TABLE} WHERE recipient = %s"
                        " FOR UPDATE", [RECIPIENTS[0]])
            with pg.cursor() as mine:  # waiting for a lock would fail, not hang
                mine.execute("SET lock_timeout = '5s'")
            pg.commit()
            now = datetime.now(UTC)
            claimed, _ = outbox.claim(now, now + timedelta(minutes=10), "me",
                                      ignore_backoff=False)
        assert sorted(c.key[2] for c in claimed) == RECIPIENTS[1:]
    finally:
        other.close()
        pg.close()


class _Crash(BaseException):
    """The sender's process dying mid-round (nothing of ours catches it)."""


class _CrashAfter:
    def __init__(self, n: int) -> None:
        self.n = n
        self.delivered: list[EmailMessage] = []

    def send(self, message: EmailMessage) -> None:
        if len(self.delivered) == self.n:
            raise _Crash
        self.delivered.append(message)

    def close(self) -> None:
        pass


def test_a_sender_that_dies_mid_round_releases_its_claim_after_the_lease(
        tmp_path: Path, catalog: str, smtp_server: Any) -> None:
    settings = loaded_lake(tmp_path, catalog, smtp_server)
    with pytest.raises(_Crash):
        send_stage(settings, _CrashAfter(3))
    states = [row[1] for row in deliveries(catalog)]
    assert states.count("sent") == 3 and states.count("sending") == len(RECIPIENTS) - 3
    assert send_stage(settings).sent == 0  # still claimed by the dead sender
    assert smtp_server.messages == []
    pg = delivery.connect(catalog)
    try:
        with open_store(settings, read_only=True) as con:
            later = datetime.now(UTC) + alert.lease_for(settings) + timedelta(seconds=1)
            result = alert.send_pending(con, settings, alert.mailer_for(settings), now=later,
                                        outbox=delivery.PgOutbox(pg))
    finally:
        pg.close()
    assert result.sent == len(RECIPIENTS) - 3 and result.sending == 0
    assert sorted(str(m["To"]) for m in smtp_server.messages) == RECIPIENTS[3:]
    assert [row[1] for row in deliveries(catalog)] == ["sent"] * len(RECIPIENTS)


def test_a_send_during_a_load_does_not_wait_for_the_writer_lock(
        tmp_path: Path, catalog: str, smtp_server: Any) -> None:
    settings = loaded_lake(tmp_path, catalog, smtp_server)
    results: list[alert.SendResult] = []
    lock = LakeBackend(settings)
    with backend(settings).writer() as con:  # a load is running: the writer lock is held
        with pytest.raises(store.DatabaseLocked, match="writer lock"), \
                lock.writer_lock(wait=0.5):  # it is held indeed
            pass
        con.execute("BEGIN")
        con.execute("UPDATE stories SET title = title")  # its transaction open
        sender = threading.Thread(target=lambda: results.append(send_stage(settings)))
        sender.start()
        # A guard against a hang, not a timing: a sender that took the writer
        # lock would wait for this load for LOCK_WAIT_SECONDS (600 s).
        sender.join(timeout=120)
        assert not sender.is_alive() and results[0].sent == len(RECIPIENTS)
        con.execute("COMMIT")
    assert len(smtp_server.messages) == len(RECIPIENTS)


def test_newsmon_sql_shows_the_sent_state_of_lake_alerts(
        tmp_path: Path, catalog: str, smtp_server: Any) -> None:
    settings = loaded_lake(tmp_path, catalog, smtp_server)
    config = tmp_path / "newsmon.yaml"
    config.write_text(yaml.safe_dump({
        "database": "news.duckdb", "staging_dir": "staging",
        "store": lake.store_section(catalog, tmp_path / "lake-data")}), encoding="utf-8")

    def status_counts() -> list[str]:
        done = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "sql", "--config", str(config), "--csv",
             "SELECT status, count(*) AS n, count(message_id) AS ids FROM alerts GROUP BY ALL"],
            capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert status_counts() == ["status,n,ids", f"pending,{len(RECIPIENTS)},0"]
    assert send_stage(settings).sent == len(RECIPIENTS)
    assert status_counts() == ["status,n,ids", f"sent,{len(RECIPIENTS)},{len(RECIPIENTS)}"]
    # `newsmon alerts` lists the same state (it reads the view, not a DuckDB file).
    listed = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "alerts", "--config", str(config)],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert f"outbox: 0 pending, 0 sending, {len(RECIPIENTS)} sent, 0 failed" in listed.stdout


def test_a_grown_lake_story_is_an_update_once_its_alert_was_sent(
        tmp_path: Path, catalog: str, smtp_server: Any) -> None:
    from integration.test_alerts import RULE, TEXT

    # The load decides on an update from the delivery state in PostgreSQL
    # (the view alert_state): the lake's own rows stay 'pending'.
    rules = [RULE, {**RULE, "name": "syria-updates", "updates": True}]
    settings = f.settings(tmp_path, alerts=rules, smtp={"url": smtp_server.url},
                          store=lake.store_section(catalog, tmp_path / "lake-data"))
    f.stage(settings, "run-1", [f.article(1, title="Syria working group agreed", text=TEXT,
                                          source="One", topics=("syria",))])
    with backend(settings).writer() as con:
        load(con, settings, "run-1")
    assert send_stage(settings).sent == 2  # one per rule
    f.stage(settings, "run-2", [
        f.article(n, title=f"Report {n}: Syria working group agreed", text=TEXT,
                  source=f"Outlet {n}", topics=("syria",), hours=n) for n in (2, 3)])
    with backend(settings).writer() as con:
        assert load(con, settings, "run-2").alerts_queued == 1
    assert send_stage(settings).sent == 1  # only the rule with updates: true
    first = next(m for m in smtp_server.messages
                 if m["X-Newsmon-Rule"] == "syria-updates" and "In-Reply-To" not in m)
    assert smtp_server.messages[-1]["In-Reply-To"] == first["Message-ID"]
    text = str(smtp_server.messages[-1].get_body(preferencelist=("plain",)).get_content())
    assert text.count("(new)") == 2
