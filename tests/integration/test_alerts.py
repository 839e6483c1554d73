"""Alerts through the outbox, delivered to a real SMTP server on 127.0.0.1."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from support import factories as f
from support.smtp import Inbox, free_port

from pipeline import alert, store
from pipeline.load import load
from pipeline.run import send_stage

RULE = {"name": "syria", "query": "topic:syria", "to": ["analyst@example.org"]}
TEXT = ("Israel and Russia agreed to set up a working group on the withdrawal of foreign "
        "forces from Syria, officials said after the talks in Moscow on Wednesday. ") * 3


def loaded(tmp_path: Path, articles: list[dict[str, Any]], **overrides: Any) -> Any:
    settings = f.settings(tmp_path, alerts=[RULE], **overrides)
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
    assert "Reported by 4 source(s)" in text
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
