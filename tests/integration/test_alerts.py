"""Alerts through the outbox, delivered to a real SMTP server on 127.0.0.1."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from support import factories as f
from support.smtp import Inbox, free_port

from pipeline import alert, store
from pipeline.run import send_stage
from pipeline.store.load import load

RULE = {"name": "syria", "query": "topic:syria", "to": ["analyst@example.org"]}
TEXT = ("Israel and Russia agreed to set up a working group on the withdrawal of foreign "
        "forces from Syria, officials said after the talks in Moscow on Wednesday. ") * 3


def loaded(tmp_path: Path, articles: list[dict[str, Any]], **overrides: Any) -> Any:
    settings = f.settings(tmp_path, **{"alerts": [RULE], **overrides})
    f.stage(settings, "run-1", articles)
    with store.connect(settings.database) as con:
        load(con, settings, "run-1")
    return settings


def html_part(message: Any) -> str:
    return str(message.get_body(preferencelist=("html",)).get_content())


def test_one_email_per_story_not_per_outlet(tmp_path: Path, smtp_server: Inbox) -> None:
    reports = [f.article(i, title=f"Report {i} on the Syria working group", text=TEXT,
                         source=f"Outlet {i}", topics=("syria",), hours=i) for i in range(4)]
    settings = loaded(tmp_path, reports, smtp={"url": smtp_server.url})
    result = send_stage(settings)
    assert (result.sent, result.failed, result.pending) == (1, 0, 0)
    (message,) = smtp_server.messages
    text = str(message.get_body(preferencelist=("plain",)).get_content())
    for i in range(4):
        assert f"Outlet {i}" in text
    assert "reported by 4 source(s)" in text
    assert send_stage(settings).sent == 0  # nothing left to send
    assert len(smtp_server.messages) == 1


def test_hostile_titles_are_escaped_and_never_reach_headers(
    tmp_path: Path, smtp_server: Inbox
) -> None:
    title = ('<script>alert(1)</script> <img src=x onerror=alert(2)> '
             '{{ conn.smtp_default.password }}\r\nBcc: victim@example.org')
    hostile = f.article(1, title=title, text=TEXT, source="Evil <b>Outlet</b>",
                        topics=("syria",), url="https://evil.example.org/a")
    settings = loaded(tmp_path, [hostile], smtp={"url": smtp_server.url})
    send_stage(settings)
    (message,) = smtp_server.messages
    assert smtp_server.envelopes[0][1] == ["analyst@example.org"]  # no injected Bcc
    assert "\n" not in message["Subject"] and "Bcc" not in message
    page = html_part(message)
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Evil &lt;b&gt;Outlet&lt;/b&gt;" in page
    # Template syntax arrives literally, never evaluated.
    assert "{{ conn.smtp_default.password }}" in message["Subject"]
    assert "{{ conn.smtp_default.password }}" in page


def test_non_http_links_are_withheld(tmp_path: Path) -> None:
    story = alert.StoryArticle(
        id="a", title="t", url="javascript:alert(1)", source="s", text=TEXT, language="en",
        topics=("syria",), countries=(), people=(), published_at=None)
    rule = f.settings(tmp_path, alerts=[RULE]).alerts[0]
    message = alert.render(alert.Outgoing(rule=rule, story_id="s-a", story_title="t",
                                          recipient="x@example.org",
                                          articles=(story,), trigger=story), sender="n@x")
    assert "javascript:" not in message.as_string()
    assert "link withheld" in str(message.get_body(preferencelist=("plain",)).get_content())


def test_smtp_down_keeps_alerts_pending_then_delivers_once(tmp_path: Path) -> None:
    port = free_port()  # nothing listens here yet
    report = f.article(1, title="Syria working group", text=TEXT, source="One",
                       topics=("syria",))
    settings = loaded(tmp_path, [report], smtp={"url": f"smtp://127.0.0.1:{port}",
                                                 "timeout": 2})
    down = send_stage(settings)
    assert (down.sent, down.pending) == (0, 1)
    with store.connect(settings.database) as con:
        status, error, attempts = con.execute(
            "SELECT status, error, attempts FROM alerts").fetchone()
    assert status == "pending" and "cannot reach SMTP server" in error and attempts == 1

    inbox = Inbox(host="127.0.0.1", port=port)
    controller = Controller(inbox, hostname=inbox.host, port=port)
    controller.start()
    try:
        assert send_stage(settings).sent == 0  # backing off: not due yet
        with store.connect(settings.database) as con:
            later = datetime.now(UTC) + timedelta(hours=1)
            result = alert.send_pending(con, settings, alert.mailer_for(settings), now=later)
        assert result.sent == 1
        assert len(inbox.messages) == 1
    finally:
        controller.stop()


def test_crash_between_delivery_and_marking_resends_the_same_message(tmp_path: Path) -> None:
    report = f.article(1, title="Syria working group", text=TEXT, source="One",
                       topics=("syria",))
    settings = loaded(tmp_path, [report])  # no smtp: .eml files in the outbox
    assert send_stage(settings).sent == 1
    files = list(settings.outbox.glob("*.eml"))
    assert len(files) == 1
    # Simulate a sender that delivered, then died before marking the row sent.
    with store.connect(settings.database) as con:
        con.execute("UPDATE alerts SET status = 'sending', sent_at = NULL,"
                    " next_attempt_at = ?", [datetime.now(UTC) - timedelta(minutes=1)])
        again = alert.send_pending(con, settings, alert.mailer_for(settings))
    assert again.sent == 1
    assert sorted(settings.outbox.glob("*.eml")) == files  # same Message-ID, same file


def two_stories_for_a_daily_digest(tmp_path: Path, smtp_server: Inbox) -> Any:
    """Settings with a daily digest rule and, staged as run-1, two Syria
    stories: "Older Syria story ..." and "Newer Syria story ..." 30 hours later."""
    rule = {**RULE, "mode": "digest", "period": "daily"}
    settings = f.settings(tmp_path, alerts=[rule], smtp={"url": smtp_server.url})
    older = f.article(1, title="Older Syria story about the working group", text=TEXT,
                      source="One", topics=("syria",))
    newer = f.article(2, title="Newer Syria story: floods in Aleppo",
                      text="Heavy rain flooded parts of Aleppo in Syria on Monday, local "
                      "officials said, and 200 families were moved to schools. " * 3,
                      source="Two", topics=("syria",), hours=30)
    f.stage(settings, "run-1", [older, newer])
    return settings


def test_digest_groups_stories_newest_first_once_per_period(
    tmp_path: Path, smtp_server: Inbox
) -> None:
    settings = two_stories_for_a_daily_digest(tmp_path, smtp_server)
    loaded_at = datetime(2019, 3, 1, 10, tzinfo=UTC)
    with store.connect(settings.database) as con:
        load(con, settings, "run-1", now=loaded_at)
        assert alert.send_pending(con, settings, alert.mailer_for(settings),
                                  now=loaded_at + timedelta(hours=1)).sent == 0  # not yet due
        result = alert.send_pending(con, settings, alert.mailer_for(settings),
                                    now=datetime(2019, 3, 2, 0, 5, tzinfo=UTC))
        statuses = con.execute("SELECT DISTINCT status, message_id FROM alerts").fetchall()
    assert result.sent == 1
    (message,) = smtp_server.messages
    assert message["Subject"] == "syria: 2 new stories (daily digest, 2019-03-01)"
    text = str(message.get_body(preferencelist=("plain",)).get_content())
    assert text.index("Newer Syria story") < text.index("Older Syria story")
    assert len(statuses) == 1 and statuses[0] == ("sent", message["Message-ID"])


def test_a_digest_leaves_out_a_story_whose_articles_are_gone_and_fails_its_row(
    tmp_path: Path, smtp_server: Inbox
) -> None:
    """Lake retention deletes a story's articles in one commit and cancels
    its pending alerts in another; a digest due between the two listed the
    story without its reports. Now the digest leaves it out and its row is
    failed for good with the reason, as an instant alert's is; the other
    story goes out."""
    settings = two_stories_for_a_daily_digest(tmp_path, smtp_server)
    with store.connect(settings.database) as con:
        load(con, settings, "run-1", now=datetime(2019, 3, 1, 10, tzinfo=UTC))
        (story,) = con.execute("SELECT story_id FROM articles WHERE title LIKE 'Newer%'"
                               ).fetchone() or ()
        con.execute("DELETE FROM articles WHERE story_id = ?", [story])
        result = alert.send_pending(con, settings, alert.mailer_for(settings),
                                    now=datetime(2019, 3, 2, 0, 5, tzinfo=UTC))
        rows = dict(con.execute("SELECT story_id, status || ': ' || coalesce(error, '')"
                                " FROM alerts").fetchall())
    assert (result.sent, result.failed) == (1, 1)
    (message,) = smtp_server.messages
    assert message["Subject"] == "syria: 1 new story (daily digest, 2019-03-01)"
    text = str(message.get_body(preferencelist=("plain",)).get_content())
    assert "Older Syria story" in text and "Newer Syria story" not in text
    assert rows[story] == "failed: the story has no articles any more"
    assert [v for k, v in rows.items() if k != story] == ["sent: "]


def test_a_grown_story_sends_one_threaded_update_only_when_asked(
    tmp_path: Path, smtp_server: Inbox
) -> None:
    rules = [RULE, {**RULE, "name": "syria-updates", "updates": True}]
    settings = f.settings(tmp_path, alerts=rules, smtp={"url": smtp_server.url})
    first = f.article(1, title="Syria working group agreed", text=TEXT, source="One",
                      topics=("syria",))
    f.stage(settings, "run-1", [first])
    with store.connect(settings.database) as con:
        load(con, settings, "run-1")
    assert send_stage(settings).sent == 2  # one per rule
    later = [f.article(n, title=f"Report {n}: Syria working group agreed", text=TEXT,
                       source=f"Outlet {n}", topics=("syria",), hours=n) for n in (2, 3)]
    f.stage(settings, "run-2", later)
    with store.connect(settings.database) as con:
        load(con, settings, "run-2")
    assert send_stage(settings).sent == 1  # only the rule with updates: true
    first_mail = next(m for m in smtp_server.messages
                      if m["X-Newsmon-Rule"] == "syria-updates" and "In-Reply-To" not in m)
    update = smtp_server.messages[-1]
    assert update["In-Reply-To"] == first_mail["Message-ID"]
    assert update["References"] == first_mail["Message-ID"]
    assert update["Subject"].startswith("Re: ")
    text = str(update.get_body(preferencelist=("plain",)).get_content())
    assert "Update: 2 new report(s); 3 source(s) in all." in text
    assert text.count("(new)") == 2


def test_two_senders_at_once_deliver_each_alert_once(tmp_path: Path, smtp_server: Inbox) -> None:
    import threading

    rule = {**RULE, "to": [f"analyst{i}@example.org" for i in range(6)]}
    report = f.article(1, title="Syria working group", text=TEXT, source="One",
                       topics=("syria",))
    settings = loaded(tmp_path, [report], smtp={"url": smtp_server.url}, alerts=[rule])
    results: list[alert.SendResult] = []
    with store.connect(settings.database) as con:
        barrier = threading.Barrier(2)

        def sender() -> None:
            cursor = con.cursor()  # its own connection to the same database
            barrier.wait()
            results.append(alert.send_pending(cursor, settings, alert.mailer_for(settings)))
            cursor.close()

        threads = [threading.Thread(target=sender) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        sent = con.execute("SELECT count(*) FROM alerts WHERE status = 'sent'").fetchone()
    assert sum(r.sent for r in results) == 6
    assert sent == (6,)
    assert sorted(m["To"] for m in smtp_server.messages) == sorted(rule["to"])


def test_backtest_lists_the_stories_a_rule_would_have_sent(tmp_path: Path) -> None:
    reports = [
        f.article(1, title="Syria working group", text=TEXT, source="One", topics=("syria",)),
        f.article(2, title="Syria working group, second outlet", text=TEXT, source="Two",
                  topics=("syria",), hours=1),
        f.article(3, title="Floods in Spain", text="Rivers burst their banks near Seville "
                  "after a week of rain, officials said on Tuesday. " * 4, source="Three",
                  hours=2),
    ]
    settings = loaded(tmp_path, reports)
    with store.connect(settings.database) as con:
        hits = alert.backtest(con, settings.alerts[0])
        strict = alert.backtest(con, settings.alerts[0].model_copy(update={"min_sources": 3}))
    assert [(h.n_sources, h.matching_articles) for h in hits] == [(2, 2)]
    assert strict == []


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def test_starttls_with_a_private_ca_and_a_password_from_the_environment(
    tmp_path: Path, monkeypatch: Any
) -> None:
    import ssl

    from aiosmtpd.smtp import AuthResult, LoginPassword

    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    logins: list[tuple[bytes, bytes]] = []

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                     data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login, data.password))
        return AuthResult(success=data.password == b"s3cret")

    inbox = Inbox(host="127.0.0.1", port=free_port())
    controller = Controller(inbox, hostname=inbox.host, port=inbox.port, tls_context=context,
                            require_starttls=True, authenticator=authenticate,
                            auth_require_tls=True)
    controller.start()
    monkeypatch.setenv("NEWSMON_SMTP_PASSWORD", "s3cret")
    try:
        report = f.article(1, title="Syria working group", text=TEXT, source="One",
                           topics=("syria",))
        settings = loaded(tmp_path, [report], smtp={
            "url": f"smtp+starttls://127.0.0.1:{inbox.port}", "username": "newsmon",
            "ca_file": str(cert)})
        assert send_stage(settings).sent == 1
        assert len(inbox.messages) == 1
        assert logins == [(b"newsmon", b"s3cret")]
    finally:
        controller.stop()


def test_tls_without_the_ca_fails_with_a_reason_and_keeps_the_alert(tmp_path: Path) -> None:
    import ssl

    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox(host="127.0.0.1", port=free_port())
    controller = Controller(inbox, hostname=inbox.host, port=inbox.port, tls_context=context,
                            require_starttls=True)
    controller.start()
    try:
        report = f.article(1, title="Syria working group", text=TEXT, source="One",
                           topics=("syria",))
        settings = loaded(tmp_path, [report], smtp={
            "url": f"smtp+starttls://127.0.0.1:{inbox.port}", "timeout": 5})
        result = send_stage(settings)
        assert (result.sent, result.pending) == (0, 1)
        with store.connect(settings.database) as con:
            (error,) = con.execute("SELECT error FROM alerts").fetchone()
        assert "CERTIFICATE_VERIFY_FAILED" in error or "certificate verify failed" in error
        assert inbox.messages == []
    finally:
        controller.stop()
