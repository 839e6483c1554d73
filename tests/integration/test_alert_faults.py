"""Alert delivery under faults, against real SMTP servers on 127.0.0.1: replies
scripted per command (aiosmtpd), a server that never answers, a sender killed
mid-round, a full disk. Each test counts what arrived: every alert once."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support import factories as f
from support.disk import fill, tmpfs
from support.smtp import Inbox, RawServer, ScriptedInbox, free_port, serving

from pipeline import alert, store
from pipeline.cli import main
from pipeline.run import send_stage
from pipeline.store.load import load

TEXT = ("Israel and Russia agreed to set up a working group on the withdrawal of foreign "
        "forces from Syria, officials said after the talks in Moscow on Wednesday. ") * 3
LATER = timedelta(days=1)  # past any retry backoff of these tests


def recipients(n: int) -> list[str]:
    return [f"analyst{i}@example.org" for i in range(n)]


def loaded(tmp_path: Path, url: str, to: list[str], *, timeout: float = 5,
           database: Path | None = None, **smtp: Any) -> Any:
    """One story, one rule to ``to``: one outbox row (and one email) per recipient."""
    rule = {"name": "syria", "query": "topic:syria", "to": to}
    overrides: dict[str, Any] = {"alerts": [rule],
                                 "smtp": {"url": url, "timeout": timeout, **smtp}}
    if database is not None:
        overrides["database"] = str(database)
    settings = f.settings(tmp_path, **overrides)
    f.stage(settings, "run-1", [f.article(1, title="Syria working group", text=TEXT,
                                          source="One", topics=("syria",))])
    with store.connect(settings.database) as con:
        load(con, settings, "run-1")
    return settings


def config_file(tmp_path: Path, settings: Any) -> str:
    path = tmp_path / "newsmon.yaml"
    path.write_text(json.dumps({
        "database": str(settings.database), "staging_dir": str(settings.staging),
        "alerts": [r.model_dump(mode="json") for r in settings.alerts],
        "smtp": settings.smtp.model_dump(mode="json"),
    }), encoding="utf-8")
    return str(path)


def outbox(settings: Any) -> list[tuple[str, str, int, str | None]]:
    with store.connect(settings.database, read_only=True) as con:
        return con.execute("SELECT recipient, status, attempts, error FROM alerts"
                           " ORDER BY recipient").fetchall()


def send_later(settings: Any, delay: timedelta = LATER, **options: Any) -> alert.SendResult:
    with store.connect(settings.database) as con:
        return alert.send_pending(con, settings, alert.mailer_for(settings),
                                  now=datetime.now(UTC) + delay, **options)


@pytest.fixture
def scripted() -> Iterator[ScriptedInbox]:
    with serving(ScriptedInbox(host="127.0.0.1", port=free_port())) as inbox:
        yield inbox


def slow_first(settings: Any, seconds: float) -> Any:
    """A mailer class for ``settings``' server whose first delivery waits
    ``seconds`` first (a slow server, past a lease)."""

    class Slow:
        def __init__(self) -> None:
            self.smtp = alert.SmtpMailer.from_config(settings.smtp)
            self.first = True

        def send(self, message: Any) -> None:
            if self.first:
                self.first = False
                time.sleep(seconds)
            self.smtp.send(message)

        def close(self) -> None:
            self.smtp.close()

    return Slow


def delivered(inbox: Inbox) -> Counter[str]:
    return Counter(str(m["To"]) for m in inbox.messages)


# -- RFC 5321 replies --------------------------------------------------------------------


def test_greylisted_451_to_rcpt_is_retried_then_delivered_once(
    tmp_path: Path, scripted: ScriptedInbox, caplog: pytest.LogCaptureFixture
) -> None:
    scripted.replies["RCPT"] = ["451 4.7.1 Greylisted, try again later"]
    settings = loaded(tmp_path, scripted.url, recipients(1))
    first = send_stage(settings)
    assert (first.sent, first.failed, first.retry, first.pending) == (0, 0, 1, 1)
    assert first.stopped is None  # the server is fine; only this message waits
    ((_, status, attempts, error),) = outbox(settings)
    assert status == "pending" and attempts == 1
    assert "answered RCPT TO:<analyst0@example.org> with 451 4.7.1 Greylisted" in error
    # The log line says what and why in its text (the formatter drops extra=).
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "alert 'syria' to analyst0@example.org" in warning
    assert "451 4.7.1 Greylisted" in warning and "next attempt at" in warning
    assert first.next_attempt_at is not None
    assert timedelta(seconds=50) < first.next_attempt_at - datetime.now(UTC) < timedelta(
        minutes=2)  # RETRY_BASE: the first retry after a minute

    assert send_stage(settings).sent == 0  # backing off
    assert scripted.calls["RCPT"] == 1
    assert send_later(settings).sent == 1
    assert send_later(settings).sent == 0
    assert delivered(scripted) == {"analyst0@example.org": 1}
    assert [row[1] for row in outbox(settings)] == ["sent"]


@pytest.mark.parametrize("command", ["MAIL", "RCPT", "DATA"])
def test_421_at_any_command_stops_the_round_then_each_is_delivered_once(
    tmp_path: Path, scripted: ScriptedInbox, command: str
) -> None:
    scripted.replies[command] = ["421 4.3.2 Service shutting down"]
    settings = loaded(tmp_path, scripted.url, recipients(4))
    first = send_stage(settings)
    # 421 closes the session: one attempt, the other three not tried this round.
    assert (first.sent, first.failed, first.retry, first.pending) == (0, 0, 4, 4)
    assert first.stopped is not None and "421 4.3.2" in first.stopped
    assert scripted.calls[command] == 1
    rows = outbox(settings)
    assert [r[2] for r in rows] == [1, 0, 0, 0]  # attempts: only the first was tried
    assert all(r[1] == "pending" for r in rows)
    assert all("not tried: the round stopped after" in r[3] for r in rows[1:])

    again = send_later(settings)
    assert (again.sent, again.pending) == (4, 0)
    assert send_later(settings).sent == 0
    assert delivered(scripted) == dict.fromkeys(recipients(4), 1)


def test_421_greeting_costs_one_connection_then_delivered_once(tmp_path: Path) -> None:
    refusing = RawServer(greeting=b"421 4.3.2 Too busy, come back later\r\n", hang_up=True)
    with refusing:
        settings = loaded(tmp_path, refusing.url, recipients(5))
        first = send_stage(settings)
    assert refusing.connections == 1
    assert (first.sent, first.failed, first.retry, first.pending) == (0, 0, 5, 5)
    assert first.stopped is not None and "refused the session: 421 4.3.2" in first.stopped

    # The server recovers, same port.
    with serving(Inbox(host="127.0.0.1", port=refusing.port)) as inbox:
        assert send_later(settings).sent == 5
        assert send_later(settings).sent == 0
    assert delivered(inbox) == dict.fromkeys(recipients(5), 1)


def test_550_to_rcpt_fails_for_good_with_the_reason(
    tmp_path: Path, scripted: ScriptedInbox
) -> None:
    scripted.replies["RCPT"] = ["550 5.1.1 <analyst0@example.org>: no such user"]
    settings = loaded(tmp_path, scripted.url, recipients(3))
    result = send_stage(settings)
    # The refusal is this recipient's: the round goes on for the others.
    assert (result.sent, result.failed, result.retry, result.pending) == (2, 1, 0, 0)
    rows = outbox(settings)
    assert rows[0][1] == "failed" and "550 5.1.1 <analyst0@example.org>: no such user" in rows[0][3]
    assert [r[1] for r in rows[1:]] == ["sent", "sent"]
    assert send_later(settings).sent == 0  # never retried
    assert scripted.calls["RCPT"] == 3
    assert delivered(scripted) == {"analyst1@example.org": 1, "analyst2@example.org": 1}


def test_554_to_data_fails_for_good_with_the_reason(
    tmp_path: Path, scripted: ScriptedInbox
) -> None:
    scripted.replies["DATA"] = ["554 5.6.0 Message content rejected"]
    settings = loaded(tmp_path, scripted.url, recipients(1))
    result = send_stage(settings)
    assert (result.sent, result.failed, result.retry, result.pending) == (0, 1, 0, 0)
    ((_, status, attempts, error),) = outbox(settings)
    assert status == "failed" and attempts == 1
    assert "answered DATA with 554 5.6.0 Message content rejected" in error
    assert send_later(settings).sent == 0
    assert send_later(settings, ignore_backoff=True).sent == 0  # --now does not revive it
    assert scripted.calls["DATA"] == 1
    assert scripted.messages == []


def test_each_alert_is_counted_once(tmp_path: Path, scripted: ScriptedInbox,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    scripted.replies["RCPT"] = ["550 5.1.1 no such user", "451 4.7.1 Greylisted"]
    settings = loaded(tmp_path, scripted.url, recipients(3))
    assert main(["alerts", "send", "--config", config_file(tmp_path, settings)]) == 1
    out = capsys.readouterr().out
    # Three alerts: one sent, one refused for good, one pending (the greylisted one,
    # described, not counted a second time as failed).
    assert out.splitlines()[0] == "1 sent, 1 failed, 1 pending"
    assert "1 email(s) not delivered this round, left pending" in out


# -- a server that does not answer ---------------------------------------------------------


def test_a_hanging_server_costs_one_timeout_per_round(tmp_path: Path) -> None:
    hanging = RawServer()  # accepts the connection, never says a word
    with hanging:
        settings = loaded(tmp_path, hanging.url, recipients(50), timeout=0.3)
        first = send_stage(settings)
        assert hanging.connections == 1
        assert (first.sent, first.failed, first.retry, first.pending) == (0, 0, 50, 50)
        assert first.stopped is not None and "no answer within 0.3 s" in first.stopped
        rows = outbox(settings)
        assert sum(r[2] for r in rows) == 1  # one alert attempted, 49 left untried
        assert {r[1] for r in rows} == {"pending"}
        # Still hanging on a later round: one more connection, one more attempt.
        assert send_later(settings, timedelta(hours=1)).sent == 0
        assert hanging.connections == 2
        assert sum(r[2] for r in outbox(settings)) == 2

    with serving(Inbox(host="127.0.0.1", port=hanging.port)) as inbox:
        recovered = send_later(settings)
        assert (recovered.sent, recovered.pending, recovered.retry) == (50, 0, 0)
        assert send_later(settings).sent == 0
    assert delivered(inbox) == dict.fromkeys(recipients(50), 1)


def test_a_server_stalling_mid_dialogue_costs_one_timeout(
    tmp_path: Path, scripted: ScriptedInbox
) -> None:
    scripted.replies["DATA"] = [ScriptedInbox.STALL]
    settings = loaded(tmp_path, scripted.url, recipients(10), timeout=0.3)
    first = send_stage(settings)
    assert (first.sent, first.retry, first.pending) == (0, 10, 10)
    assert first.stopped is not None and "mid-dialogue: no answer within 0.3 s" in first.stopped
    assert scripted.calls["DATA"] == 1
    again = send_later(settings)
    assert (again.sent, again.pending) == (10, 0)
    assert delivered(scripted) == dict.fromkeys(recipients(10), 1)


# -- a sender killed mid-round -------------------------------------------------------------


def test_a_killed_sender_leaves_rows_sending_visibly_until_its_lease_ends(
    tmp_path: Path, scripted: ScriptedInbox, capsys: pytest.CaptureFixture[str]
) -> None:
    scripted.replies["DATA"] = [ScriptedInbox.STALL]
    settings = loaded(tmp_path, scripted.url, recipients(4), timeout=30)
    config = config_file(tmp_path, settings)
    sender = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "alerts", "send",
                               "--config", config], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while scripted.calls.get("DATA", 0) == 0:  # the first message is in DATA
            assert sender.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        os.kill(sender.pid, signal.SIGKILL)
        sender.wait()
    rows = outbox(settings)
    assert [r[1] for r in rows] == ["sending"] * 4

    assert main(["alerts", "--config", config]) == 0
    listing = capsys.readouterr().out
    assert "outbox: 0 pending, 4 sending, 0 sent, 0 failed" in listing
    assert f"4 sending, claimed by {os.uname().nodename}:{sender.pid}:" in listing
    assert "if that sender died, the next send takes them over at" in listing

    # Within the lease: nothing is taken from a sender that may still be at work.
    assert main(["alerts", "send", "--now", "--config", config]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "0 sent, 0 failed, 0 pending, 4 sending"
    assert "4 alert(s) claimed by another sender, or by one that died: taken over at" in out

    lease = alert.lease_for(settings)
    taken_over = send_later(settings, lease + timedelta(seconds=1))
    assert (taken_over.sent, taken_over.sending, taken_over.pending) == (4, 0, 0)
    assert delivered(scripted) == dict.fromkeys(recipients(4), 1)


# -- the file closed while the server talks ---------------------------------------------


def sender(config: str) -> subprocess.Popen[bytes]:
    """``newsmon alerts send`` in a process of its own (DuckDB's lock is per process)."""
    return subprocess.Popen([sys.executable, "-m", "pipeline.cli", "alerts", "send",
                             "--config", config], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def wait_for(condition: Any, what: str, process: subprocess.Popen[bytes] | None = None,
             within: float = 60) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert process is None or process.poll() is None, f"the sender ended before {what}"
        assert time.monotonic() < deadline, f"no {what} within {within} s"
        time.sleep(0.02)


def test_a_round_stalled_at_the_server_leaves_the_file_to_readers_and_writers(
    tmp_path: Path, scripted: ScriptedInbox
) -> None:
    import duckdb

    scripted.replies["DATA"] = [ScriptedInbox.STALL]
    settings = loaded(tmp_path, scripted.url, recipients(4), timeout=3)
    process = sender(config_file(tmp_path, settings))
    try:
        # The first email is in DATA: the server says nothing for smtp.timeout.
        wait_for(lambda: scripted.calls.get("DATA", 0) > 0, "DATA", process)
        opened = time.monotonic()
        reader = duckdb.connect(str(settings.database), read_only=True)
        claimed = reader.execute("SELECT status, count(*) FROM alerts GROUP BY ALL").fetchall()
        reader.close()
        writer = duckdb.connect(str(settings.database))
        writer.close()
        took = time.monotonic() - opened
        assert process.poll() is None  # still waiting for the server
        assert process.wait(timeout=60) == 1  # not delivered: exit 1
    finally:
        process.kill()
        process.wait()
    assert claimed == [("sending", 4)]
    assert took < 2, took  # neither open waited for the round
    rows = outbox(settings)
    assert [r[1] for r in rows] == ["pending"] * 4
    assert [r[2] for r in rows] == [1, 0, 0, 0]
    assert list(settings.database.parent.glob("news.duckdb.deliveries.*")) == []
    assert send_later(settings).sent == 4
    assert delivered(scripted) == dict.fromkeys(recipients(4), 1)


@dataclass
class SlowSecond(Inbox):
    """Takes the second message a while (then accepts it): a round under way."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if len(self.messages) == 1:
            await asyncio.sleep(1.5)
        return await super().handle_DATA(server, session, envelope)


def test_a_round_killed_after_delivering_and_before_marking_is_not_sent_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import duckdb

    with serving(SlowSecond(host="127.0.0.1", port=free_port())) as inbox:
        settings = loaded(tmp_path, inbox.url, recipients(4))
        journals = f"{settings.database.name}.deliveries.*"
        process = sender(config_file(tmp_path, settings))
        try:
            wait_for(lambda: len(inbox.messages) == 1, "first email", process)
            # An analyst takes the writer while the round delivers, and holds it.
            writer = duckdb.connect(str(settings.database))
            try:
                wait_for(lambda: len(inbox.messages) == 4, "fourth email", process)

                def recorded() -> int:
                    return sum(p.read_bytes().count(b'"status": "sent"')
                               for p in settings.database.parent.glob(journals))

                wait_for(lambda: recorded() == 4, "journal of four", process)
                time.sleep(0.3)
                assert process.poll() is None  # waiting for the writer, to mark them
                process.kill()  # the round dies before its marks
                process.wait()
                assert writer.execute("SELECT count(*) FROM alerts WHERE status = 'sending'"
                                      ).fetchone() == (4,)
            finally:
                writer.close()
        finally:
            process.kill()
            process.wait()
        assert len(list(settings.database.parent.glob(journals))) == 1

        # Within the killed round's lease and after it: nothing goes out again.
        again = send_stage(settings)
        assert (again.sent, again.pending, again.sending) == (0, 0, 0)
        assert "applied 4 delivery outcome(s) (4 email(s) sent)" in caplog.text
        assert list(settings.database.parent.glob(journals)) == []
        assert [r[1] for r in outbox(settings)] == ["sent"] * 4
        assert send_later(settings, alert.lease_for(settings) + timedelta(seconds=1)).sent == 0
    assert delivered(inbox) == dict.fromkeys(recipients(4), 1)
    assert len(inbox.messages) == 4


def test_a_round_past_half_its_lease_stops_and_leaves_the_rest_due_at_once(
    tmp_path: Path, scripted: ScriptedInbox
) -> None:
    settings = loaded(tmp_path, scripted.url, recipients(4))
    Slow = slow_first(settings, 1.2)  # the first delivery takes more than half the lease

    with store.connect(settings.database) as con:
        first = alert.send_pending(con, settings, Slow(), lease=timedelta(seconds=2))
    # Nothing renews a file round's lease (that takes the writer): it stops
    # before another sender may take its rows, and leaves them due now.
    assert (first.sent, first.retry, first.pending, first.sending) == (1, 3, 3, 0)
    assert first.stopped is not None and "half of its claim's lease" in first.stopped
    assert first.next_attempt_at is not None and first.next_attempt_at <= datetime.now(UTC)
    assert send_stage(settings).sent == 3
    assert delivered(scripted) == dict.fromkeys(recipients(4), 1)


def test_a_backlog_past_max_per_round_goes_in_rounds_each_email_once(
    tmp_path: Path, scripted: ScriptedInbox
) -> None:
    """A round claimed every due alert at once: after an outage, thousands,
    each `sending` under one lease, with journal room for each. A round now
    claims smtp.max_per_round emails, the longest due first; the rest stay
    pending, due, and `alerts send` goes on in rounds until none is due."""
    settings = loaded(tmp_path, scripted.url, recipients(7), max_per_round=3)

    with store.connect(settings.database) as con:
        first = alert.send_pending(con, settings, alert.mailer_for(settings))
    assert (first.sent, first.pending, first.sending, first.more) == (3, 4, 0, True)
    assert first.next_attempt_at is not None and first.next_attempt_at <= datetime.now(UTC)
    assert [r[1] for r in outbox(settings)].count("sent") == 3

    rest = send_stage(settings)  # two rounds more: 3, then 1
    assert (rest.sent, rest.pending, rest.sending, rest.more) == (4, 0, 0, False)
    assert delivered(scripted) == dict.fromkeys(recipients(7), 1)
    assert [r[1:3] for r in outbox(settings)] == [("sent", 1)] * 7
    assert send_later(settings, alert.lease_for(settings) + timedelta(seconds=1)).sent == 0
    assert len(scripted.messages) == 7


def test_a_backlogs_rounds_stop_once_half_a_lease_has_gone(
    tmp_path: Path, scripted: ScriptedInbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rounds of one send go on for half a claim's lease at most (what one
    round may last): a backlog of thousands does not hold a pass, the Airflow
    task and the loads waiting on its pool for hours. Here the lease as the
    loop reads it is 0 s: one round a send, the rest due at the next."""
    settings = loaded(tmp_path, scripted.url, recipients(7), max_per_round=3)
    monkeypatch.setattr(alert, "lease_for", lambda settings: timedelta(0))
    first = send_stage(settings)
    assert (first.sent, first.pending, first.more) == (3, 4, True)
    second = send_stage(settings)
    assert (second.sent, second.pending, second.more) == (3, 1, True)
    assert len(scripted.messages) == 6


@pytest.mark.parametrize("value", [0, -1, "many", 100_001])
def test_a_bad_max_per_round_is_one_sentence_and_exit_2(
    tmp_path: Path, value: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "newsmon.yaml"
    path.write_text(json.dumps({"database": str(tmp_path / "news.duckdb"), "smtp": {
        "url": "smtp://127.0.0.1:25", "max_per_round": value}}), encoding="utf-8")
    assert main(["alerts", "send", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "smtp.max_per_round" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


def test_two_senders_with_a_cap_share_a_backlog_each_email_once(
    tmp_path: Path, scripted: ScriptedInbox
) -> None:
    """Two processes sending one file's backlog in capped rounds at once:
    DuckDB's conflict check keeps their claims apart, and every email goes
    out once."""
    settings = loaded(tmp_path, scripted.url, recipients(12), max_per_round=2)
    config = config_file(tmp_path, settings)
    senders = [sender(config) for _ in range(2)]
    for process in senders:
        assert process.wait(timeout=120) == 0, process.stderr.read() if process.stderr else ""
    assert delivered(scripted) == dict.fromkeys(recipients(12), 1)
    assert [r[1:3] for r in outbox(settings)] == [("sent", 1)] * 12


def test_a_backlog_that_every_email_of_a_round_is_refused_ends_each_tried_once(
    tmp_path: Path, scripted: ScriptedInbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A round that delivered nothing and failed nothing (each email refused
    for now, 451) took its most and so the next began: by the time the
    loop came back to a refused email its retry time was past (a backlog
    longer to go through than the backoff: here the backoff made short),
    and `alerts send` tried the same emails over and over, round after
    round, for as long as the server refused them. A round that got
    nowhere ends the rounds."""
    monkeypatch.setattr("pipeline.alert._send.RETRY_BASE", timedelta(milliseconds=1))
    scripted.replies["RCPT"] = ["451 4.3.0 Try again later"] * 60
    settings = loaded(tmp_path, scripted.url, recipients(3), max_per_round=1)

    result = send_stage(settings)
    assert (result.sent, result.failed, result.pending) == (0, 0, 3)
    assert result.undelivered >= 1
    assert scripted.calls["RCPT"] <= 3, scripted.calls  # each email once at most
    assert max(attempts for _, _, attempts, _ in outbox(settings)) == 1


def test_alerts_send_now_counts_an_email_retried_and_delivered_as_delivered(
    tmp_path: Path, scripted: ScriptedInbox, capsys: pytest.CaptureFixture[str]
) -> None:
    """--now takes the emails waiting out a backoff at once, so an email
    refused for now (greylisted) in a round is taken again in the next
    one, which may deliver it. Its refusal was still counted as an email
    left pending: "3 sent, 0 failed, 0 pending", "1 email(s) not delivered
    ... left pending", exit 1."""
    scripted.replies["RCPT"] = ["451 4.7.1 Greylisted"]  # the first RCPT only
    settings = loaded(tmp_path, scripted.url, recipients(3), max_per_round=2)
    config = config_file(tmp_path, settings)
    code = main(["alerts", "send", "--now", "--config", config])
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "3 sent, 0 failed, 0 pending", out
    assert "not delivered" not in out, out
    assert code == 0
    assert delivered(scripted) == dict.fromkeys(recipients(3), 1)


def test_run_once_exits_1_when_an_earlier_round_of_a_backlog_left_an_email_pending(
    tmp_path: Path, seed_site: Any, scripted: ScriptedInbox,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`run --once` sends a backlog in rounds of smtp.max_per_round. An
    email refused for now (451) in the first round stays pending; the later
    rounds delivered the rest, and the pass took the last round's "nothing
    left to retry" for its own: exit 0, with an alert undelivered."""
    scripted.replies["RCPT"] = ["451 4.7.1 Greylisted"]  # the first RCPT only
    config = tmp_path / "newsmon.yaml"
    config.write_text(json.dumps({
        "database": str(tmp_path / "news.duckdb"),
        "feeds": [{"url": seed_site.feed_url, "name": "Seed outlets"}],
        "alerts": [{"name": "syria", "query": "topic:syria", "to": recipients(5)}],
        "smtp": {"url": scripted.url, "max_per_round": 2},
        "fetch": {"allow_private": [f"127.0.0.1:{seed_site.port}"]},
        "process": {"workers": 1},
    }), encoding="utf-8")
    code = main(["run", "--once", "--quiet", "--config", str(config)])
    out = capsys.readouterr().out
    assert "5 alert(s) queued; 4 sent, 0 failed, 1 pending" in out, out
    assert "1 email(s) not delivered this round, left pending" in out, out
    assert code == 1
    assert len(scripted.messages) == 4


# -- the command line ----------------------------------------------------------------------


def test_alerts_send_says_when_the_next_attempt_is_due_and_now_skips_the_backoff(
    tmp_path: Path, scripted: ScriptedInbox, capsys: pytest.CaptureFixture[str]
) -> None:
    scripted.replies["RCPT"] = ["451 4.7.1 Greylisted"]
    settings = loaded(tmp_path, scripted.url, recipients(1))
    config = config_file(tmp_path, settings)
    assert main(["alerts", "send", "--config", config]) == 1  # not delivered: exit 1
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "0 sent, 0 failed, 1 pending"
    assert re.search(r"^next attempt due at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(in (59|60) s\)",
                     out, re.MULTILINE)
    assert "`newsmon alerts send --now` skips a retry backoff" in out

    assert main(["alerts", "send", "--config", config]) == 0  # nothing was due
    assert capsys.readouterr().out.splitlines()[0] == "0 sent, 0 failed, 1 pending"
    assert scripted.calls["RCPT"] == 1

    assert main(["alerts", "send", "--now", "--config", config]) == 0
    assert capsys.readouterr().out.splitlines() == ["1 sent, 0 failed, 0 pending"]
    assert delivered(scripted) == {"analyst0@example.org": 1}
    assert main(["alerts", "--now", "--config", config]) == 2  # --now goes with send


def test_run_exits_1_when_an_alert_is_not_delivered(
    tmp_path: Path, seed_site: Any, scripted: ScriptedInbox,
    capsys: pytest.CaptureFixture[str],
) -> None:
    scripted.replies["RCPT"] = ["550 5.1.1 no such user"]
    config = tmp_path / "newsmon.yaml"
    config.write_text(json.dumps({
        "database": str(tmp_path / "news.duckdb"),
        "feeds": [{"url": seed_site.feed_url, "name": "Seed outlets"}],
        "alerts": [{"name": "syria", "query": "topic:syria", "to": ["analyst@example.org"]}],
        "smtp": {"url": scripted.url},
        "fetch": {"allow_private": [f"127.0.0.1:{seed_site.port}"]},
        "process": {"workers": 1},
    }), encoding="utf-8")
    assert main(["run", "--once", "--quiet", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "1 alert(s) queued; 0 sent, 1 failed, 0 pending" in out


def test_run_exits_1_when_the_mail_server_refuses_the_connection(
    tmp_path: Path, seed_site: Any,
) -> None:
    """`newsmon run --once` with the SMTP server down: the batch's round could
    not deliver the alert (pending, to retry in a minute), and the round after
    the last load found it waiting out that backoff and tried nothing. The run
    took that round's "nothing to retry" for the run's and said exit 0."""
    config = tmp_path / "newsmon.yaml"
    config.write_text(json.dumps({
        "database": str(tmp_path / "news.duckdb"),
        "feeds": [{"url": seed_site.feed_url, "name": "Seed outlets"}],
        "alerts": [{"name": "syria", "query": "topic:syria", "to": ["analyst@example.org"]}],
        "smtp": {"url": f"smtp://127.0.0.1:{free_port()}"},  # nobody listens there
        "fetch": {"allow_private": [f"127.0.0.1:{seed_site.port}"]},
        "process": {"workers": 1},
    }), encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--once", "--quiet",
                             "--config", str(config)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "1 alert(s) queued; 0 sent, 0 failed, 1 pending" in result.stdout, result.stdout
    assert "1 email(s) not delivered this round, left pending" in result.stdout, result.stdout
    assert "cannot reach SMTP server" in result.stderr, result.stderr


# -- disk full -----------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 16 MB tmpfs (root only): big enough for the database, then filled."""
    with tmpfs(tmp_path / "disk", "16m") as mount:
        yield mount


def test_disk_full_while_sending_says_so_exits_2_then_delivers_each_once(
    tmp_path: Path, small_disk: Path, scripted: ScriptedInbox,
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    settings = loaded(tmp_path, scripted.url, recipients(3), database=small_disk / "news.duckdb")
    with store.connect(settings.database) as con:
        con.execute("CHECKPOINT")  # the claim then has to grow the file: it cannot
    config = config_file(tmp_path, settings)
    filler = fill(small_disk)

    assert main(["alerts", "send", "--config", config]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"newsmon: disk full at {small_disk} (writing news.duckdb.wal)"
                          " while claiming alerts")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "another sender" not in caplog.text
    assert scripted.messages == []
    assert [r[1] for r in outbox(settings)] == ["pending"] * 3

    filler.unlink()
    assert main(["alerts", "send", "--config", config]) == 0
    assert main(["alerts", "send", "--now", "--config", config]) == 0
    assert delivered(scripted) == dict.fromkeys(recipients(3), 1)
    assert [r[1] for r in outbox(settings)] == ["sent"] * 3


def test_a_round_whose_lease_ran_out_leaves_the_rows_taken_over_to_their_new_sender(
    tmp_path: Path, scripted: ScriptedInbox
) -> None:
    import threading

    settings = loaded(tmp_path, scripted.url, recipients(4))
    lease = timedelta(seconds=1)  # shorter than one (slowed) delivery, on purpose
    results: dict[str, alert.SendResult] = {}
    Slow = slow_first(settings, 1.5)  # sender A's: its first delivery outlasts the lease

    with store.connect(settings.database) as con:
        def sender_b() -> None:
            time.sleep(1.1)  # A's lease has run out; A is still in its first delivery
            cursor = con.cursor()
            results["b"] = alert.send_pending(cursor, settings, alert.mailer_for(settings),
                                              lease=lease)
            cursor.close()

        b = threading.Thread(target=sender_b)
        b.start()
        results["a"] = alert.send_pending(con, settings, Slow(), lease=lease)
        b.join()
    # B took every row over and sent them. A finished the delivery it was in
    # (the one duplicate a delivery slower than the lease allows: the same
    # Message-ID) and left the other three to B.
    assert results["b"].sent == 4
    assert results["a"].sent == 1
    counts = delivered(scripted)
    assert counts == {"analyst0@example.org": 2, "analyst1@example.org": 1,
                      "analyst2@example.org": 1, "analyst3@example.org": 1}
    first = [m["Message-ID"] for m in scripted.messages if m["To"] == "analyst0@example.org"]
    assert first[0] == first[1]
    assert [r[1] for r in outbox(settings)] == ["sent"] * 4


def test_alerts_lists_a_next_attempt_only_for_alerts_still_to_send(
    tmp_path: Path, scripted: ScriptedInbox, capsys: pytest.CaptureFixture[str]
) -> None:
    # A sent alert keeps its claim's lease in next_attempt_at; it is no attempt to come.
    scripted.replies["RCPT"] = ["451 4.7.1 Greylisted"]  # the first; the second goes out
    settings = loaded(tmp_path, scripted.url, recipients(2))
    config = config_file(tmp_path, settings)
    assert main(["alerts", "send", "--config", config]) == 1
    capsys.readouterr()
    assert main(["alerts", "--json", "--config", config]) == 0
    rows = {r["status"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    sent, pending = rows["sent"], rows["pending"]
    assert sent["next_attempt"] is None
    assert pending["next_attempt"] is not None  # when the retry is due


def test_alerts_lists_a_database_from_before_claimed_by(
    tmp_path: Path, scripted: ScriptedInbox, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = loaded(tmp_path, scripted.url, recipients(2))
    with store.connect(settings.database) as con:
        con.execute("ALTER TABLE alerts DROP COLUMN claimed_by")
        con.execute("UPDATE alerts SET status = 'sending', next_attempt_at = ?"
                    " WHERE recipient = 'analyst0@example.org'",
                    [datetime.now(UTC) - timedelta(minutes=1)])
    # `newsmon alerts` opens read-only: the column is not added for it.
    assert main(["alerts", "--config", config_file(tmp_path, settings)]) == 0
    out = capsys.readouterr().out
    assert "outbox: 1 pending, 1 sending, 0 sent, 0 failed" in out
    assert "1 sending, claimed by (unknown); its lease has run out" in out


def test_disk_full_mid_round_keeps_the_deliveries_in_the_journal_then_marks_them_unsent_again(
    tmp_path: Path, small_disk: Path, scripted: ScriptedInbox
) -> None:
    settings = loaded(tmp_path, scripted.url, recipients(20), database=small_disk / "news.duckdb")
    with store.connect(settings.database) as con:
        con.execute("CHECKPOINT")

    class Filling:
        """Delivers, and fills the disk after the first email: the claim went
        through, marking the emails sent cannot. The journal's room was
        reserved at the claim: each delivery is still recorded."""

        def __init__(self) -> None:
            self.smtp = alert.SmtpMailer.from_config(settings.smtp)

        def send(self, message: Any) -> None:
            self.smtp.send(message)
            if not (small_disk / "filler").exists():
                fill(small_disk)

        def close(self) -> None:
            self.smtp.close()

    with pytest.raises(store.StoreError) as failed:
        send_stage(settings, Filling())
    message = str(failed.value)
    assert message.startswith(f"disk full at {small_disk} (writing news.duckdb.wal) while"
                              " marking the alerts delivered")
    assert re.search(r"; this round's 20 delivery outcome\(s\) \(20 sent\) are kept in "
                     + re.escape(str(small_disk)) + r"/news\.duckdb\.deliveries\.\S+ and marked"
                     r" by the next send round, before it claims$", message)
    (small_disk / "filler").unlink()
    assert [r[1] for r in outbox(settings)] == ["sending"] * 20
    assert len(list(small_disk.glob("news.duckdb.deliveries.*"))) == 1

    # The next round (within the lease: it takes nothing over) marks them from
    # the journal before it claims, and sends none of them again.
    after = send_stage(settings)
    assert (after.sent, after.pending, after.sending) == (0, 0, 0)
    assert [r[1] for r in outbox(settings)] == ["sent"] * 20
    assert list(small_disk.glob("*deliveries*")) == []
    assert delivered(scripted) == dict.fromkeys(recipients(20), 1)
    assert send_later(settings, alert.lease_for(settings) + timedelta(seconds=1)).sent == 0
    assert len(scripted.messages) == 20


@pytest.mark.parametrize("round_", ["left behind", "under way"])
def test_a_backup_marks_what_a_round_delivered_and_did_not_mark_so_restored_none_goes_again(
    tmp_path: Path, round_: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A round's journal holds the emails it delivered until its marks (the
    round died, the file was held, or it is still delivering). `newsmon
    backup` copied the file alone: restored, those rows were 'sending' and
    went out again once their lease ended (4 of 4 here). It now marks the
    journals' outcomes in the copy, and leaves the journals beside the
    original for its next round."""
    with serving(Inbox(host="127.0.0.1", port=free_port())) as inbox:
        settings = loaded(tmp_path, inbox.url, recipients(4))
        journals = f"{settings.database.name}.deliveries.*"
        with store.connect(settings.database) as con:
            claimed = alert.claim(con, settings)
        claimed.deliver(alert.mailer_for(settings))  # its journal: four sent, not marked
        if round_ == "left behind":
            claimed.abandon()  # unlocked, as a round that died leaves it
        try:
            copy = tmp_path / "copy.duckdb"
            assert main(["backup", str(copy), "--config", config_file(tmp_path, settings)]) == 0
        finally:
            claimed.abandon()
        assert ("; 4 delivery outcome(s) (4 email(s) sent) of 1 send round(s) not marked yet,"
                " marked in the copy)") in capsys.readouterr().out
        assert len(list(settings.database.parent.glob(journals))) == 1  # the original's, kept
        assert [r[1] for r in outbox(settings)] == ["sending"] * 4

        # Restored elsewhere (the journal does not travel): nothing goes out again.
        restored_at = tmp_path / "restored"
        restored_at.mkdir()
        (restored_at / "news.duckdb").write_bytes(copy.read_bytes())
        restored = settings.model_copy(update={"database": restored_at / "news.duckdb"})
        assert [r[1:3] for r in outbox(restored)] == [("sent", 1)] * 4
        assert send_later(restored, alert.lease_for(settings) + timedelta(seconds=1)).sent == 0
        # The original's next round marks its journal, and sends none again either.
        assert send_stage(settings).sent == 0
        assert [r[1] for r in outbox(settings)] == ["sent"] * 4
    assert delivered(inbox) == dict.fromkeys(recipients(4), 1)
    assert len(inbox.messages) == 4


def test_a_backup_restored_in_place_beside_the_journal_it_folded_in_counts_each_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The backup marks a round's journal in the copy, and the journal stays
    beside the original. Restored in place (copied over news.duckdb) while
    that journal is still there, the next round applied it again: no email
    went out again, but each alert counted an attempt more (2 for 1). A
    delivery already marked (its sent_at) is not counted again."""
    with serving(Inbox(host="127.0.0.1", port=free_port())) as inbox:
        settings = loaded(tmp_path, inbox.url, recipients(4))
        journals = f"{settings.database.name}.deliveries.*"
        with store.connect(settings.database) as con:
            claimed = alert.claim(con, settings)
        claimed.deliver(alert.mailer_for(settings))
        claimed.abandon()  # the round died before its marks: its journal is left
        copy = tmp_path / "copy.duckdb"
        assert main(["backup", str(copy), "--config", config_file(tmp_path, settings)]) == 0
        assert "marked in the copy" in capsys.readouterr().out
        assert len(list(settings.database.parent.glob(journals))) == 1

        settings.database.write_bytes(copy.read_bytes())  # restored in place
        assert [r[1:3] for r in outbox(settings)] == [("sent", 1)] * 4
        assert send_stage(settings).sent == 0  # the journal applied (again), and removed
        assert list(settings.database.parent.glob(journals)) == []
        assert [r[1:3] for r in outbox(settings)] == [("sent", 1)] * 4
        assert send_later(settings, alert.lease_for(settings) + timedelta(seconds=1)).sent == 0
    assert delivered(inbox) == dict.fromkeys(recipients(4), 1)
    assert len(inbox.messages) == 4


def test_an_eml_outbox_that_cannot_be_written_stops_the_round(tmp_path: Path) -> None:
    blocked = tmp_path / "outbox"
    blocked.write_text("a file where the outbox folder should be", encoding="utf-8")
    rule = {"name": "syria", "query": "topic:syria", "to": recipients(3)}
    settings = f.settings(tmp_path, alerts=[rule], outbox_dir=str(blocked))
    f.stage(settings, "run-1", [f.article(1, title="Syria working group", text=TEXT,
                                          source="One", topics=("syria",))])
    with store.connect(settings.database) as con:
        load(con, settings, "run-1")
    first = send_stage(settings)
    assert (first.sent, first.retry, first.pending) == (0, 3, 3)
    assert first.stopped is not None and first.stopped.startswith(f"cannot write {blocked}/")
    assert sum(r[2] for r in outbox(settings)) == 1  # one attempt, then the round stopped

    blocked.unlink()
    assert send_later(settings).sent == 3
    assert len(list(blocked.glob("*.eml"))) == 3
