"""Alert stage: an outbox of (rule, story, recipient) rows, and a sender.

Rows are queued by :func:`queue` inside the load transaction, so a story is
never stored without its alerts or alerted without being stored. The primary
key (rule, story_id, recipient) makes a story alert at most once per rule and
recipient, however many outlets report it.

The sender claims due rows (status ``sending``), delivers, and marks them
``sent`` with the Message-ID. The Message-ID is derived from the row key, so
a re-send after a crash between delivery and marking carries the same
Message-ID (mail clients and Mailpit show it once). That is the honest
guarantee: nothing is lost; a duplicate is possible only after a crash in
that window, and it is recognisably the same message.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import logging
import re
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import duckdb

from pipeline.config import AlertRule, Settings, SmtpConfig
from pipeline.query import Document, Hit, compile, parse

log = logging.getLogger(__name__)

# A row left in 'sending' this long was claimed by a sender that died.
STALE_CLAIM = timedelta(minutes=10)
RETRY_BASE = timedelta(minutes=1)
RETRY_MAX = timedelta(hours=6)
LEAD_CHARS = 600


# -- queueing (inside the load transaction) ------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StoryArticle:
    id: str
    title: str
    url: str
    source: str
    text: str
    language: str | None
    topics: tuple[str, ...]
    countries: tuple[str, ...]
    people: tuple[str, ...]
    published_at: datetime | None

    def document(self) -> Document:
        return Document(
            title=self.title, text=self.text, source=self.source, language=self.language or "",
            topics=self.topics, countries=self.countries, people=self.people,
        )


def story_articles(con: duckdb.DuckDBPyConnection, story_id: str) -> list[StoryArticle]:
    rows = con.execute(
        "SELECT id, title, url, source, text, language, topics, countries, people,"
        " published_at FROM articles WHERE story_id = ?"
        " ORDER BY coalesce(published_at, fetched_at), id",
        [story_id],
    ).fetchall()
    return [
        StoryArticle(id=r[0], title=r[1] or "", url=r[2], source=r[3] or "", text=r[4] or "",
                     language=r[5], topics=tuple(r[6] or ()), countries=tuple(r[7] or ()),
                     people=tuple(r[8] or ()), published_at=r[9])
        for r in rows
    ]


def _eligible(rule: AlertRule, article: StoryArticle) -> bool:
    if rule.languages and (article.language or "") not in rule.languages:
        return False
    return not rule.sources or article.source.lower() in {s.lower() for s in rule.sources}


def matching_article(rule: AlertRule, articles: Sequence[StoryArticle]) -> StoryArticle | None:
    """The first article of a story that fires the rule, honouring its filters."""
    if len({a.source for a in articles}) < rule.min_sources:
        return None
    matcher = compile(parse(rule.query))
    for article in articles:
        if _eligible(rule, article) and matcher.matches(article.document()):
            return article
    return None


def queue(
    con: duckdb.DuckDBPyConnection, rules: Sequence[AlertRule], story_ids: Sequence[str], *,
    now: datetime,
) -> int:
    """Write outbox rows for stories that now match a rule; return how many are new."""
    if not rules or not story_ids:
        return 0
    queued = 0
    for story in story_ids:
        articles = story_articles(con, story)
        for rule in rules:
            article = matching_article(rule, articles)
            if article is None:
                continue
            for recipient in rule.to:
                inserted = con.execute(
                    "INSERT INTO alerts (rule, story_id, article_id, recipient, status,"
                    " created_at) VALUES (?, ?, ?, ?, 'pending', ?)"
                    " ON CONFLICT DO NOTHING RETURNING rule",
                    [rule.name, story, article.id, recipient, now],
                ).fetchall()
                queued += len(inserted)
    return queued


# -- rendering ---------------------------------------------------------------------------


def message_id(rule: str, story_id: str, recipient: str) -> str:
    digest = hashlib.sha256(f"{rule}\x00{story_id}\x00{recipient}".encode()).hexdigest()[:32]
    return f"<{digest}@newsmon>"


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def header_text(value: str, limit: int = 200) -> str:
    """Feed text bound for a header: no CR/LF (header injection), bounded length."""
    cleaned = " ".join(_CONTROL.sub(" ", value).split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def safe_link(url: str) -> str | None:
    """Only http(s) links reach an email; javascript:, data: and the like are dropped."""
    return url if urlsplit(url).scheme in ("http", "https") else None


def _lead(text: str) -> str:
    paragraphs = [p.strip() for p in text.splitlines() if p.strip()]
    lead = ""
    for p in paragraphs:
        lead = f"{lead}\n{p}".strip()
        if len(lead) >= LEAD_CHARS // 2:
            break
    return lead if len(lead) <= LEAD_CHARS else lead[: LEAD_CHARS - 1].rsplit(" ", 1)[0] + "…"


def _highlight(text: str, hits: Sequence[Hit]) -> str:
    """HTML-escape ``text`` and wrap the matched spans in <mark>."""
    out, pos = [], 0
    for hit in sorted(hits, key=lambda h: h.start):
        if hit.start < pos or hit.end > len(text):
            continue
        out.append(html.escape(text[pos:hit.start]))
        out.append(f"<mark>{html.escape(text[hit.start:hit.end])}</mark>")
        pos = hit.end
    out.append(html.escape(text[pos:]))
    return "".join(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class Outgoing:
    rule: AlertRule
    story_id: str
    story_title: str
    recipient: str
    articles: tuple[StoryArticle, ...]
    trigger: StoryArticle


def render(item: Outgoing, *, sender: str) -> EmailMessage:
    """A multipart text + HTML email. Feed text is only ever escaped, never templated."""
    rule, lead_article = item.rule, item.trigger
    matcher = compile(parse(rule.query))
    doc = lead_article.document()
    lead = _lead(lead_article.text)
    lead_hits = [h for h in matcher.hits(Document(
        title=lead_article.title, text=lead, source=lead_article.source,
        language=doc.language, topics=doc.topics, countries=doc.countries, people=doc.people,
    )) if h.field == "text"]
    sources = sorted({a.source for a in item.articles})
    subject = header_text(item.story_title or lead_article.title or "New story")
    mute = f"Remove the rule '{rule.name}' from the alerts: list of your newsmon config to mute it."
    topics = sorted({t for a in item.articles for t in a.topics})

    text_lines = [item.story_title or lead_article.title, "", lead, "",
                  f"Reported by {len(sources)} source(s):"]
    for a in item.articles:
        link = safe_link(a.url) or "(link withheld: not http/https)"
        text_lines.append(f"- {a.source}: {a.title}\n  {link}")
    text_lines += ["", f"Topics: {', '.join(topics) or '-'}",
                   f"Rule: {rule.name} ({rule.query})", "", mute]
    plain = "\n".join(text_lines) + "\n"

    items = []
    for a in item.articles:
        link = safe_link(a.url)
        title = html.escape(a.title)
        anchor = f'<a href="{html.escape(link, quote=True)}">{title}</a>' if link else title
        items.append(f"<li><b>{html.escape(a.source)}</b>: {anchor}</li>")
    paragraphs = "".join(f"<p>{_highlight(p, [])}</p>" for p in lead.splitlines()[1:])
    first = lead.splitlines()[0] if lead else ""
    first_hits = [h for h in lead_hits if h.end <= len(first)]
    body_html = (
        f"<html><body><h2>{html.escape(item.story_title or lead_article.title)}</h2>"
        f"<p>{_highlight(first, first_hits)}</p>{paragraphs}"
        f"<h3>Reported by {len(sources)} source(s)</h3><ul>{''.join(items)}</ul>"
        f"<p>Topics: {html.escape(', '.join(topics) or '-')}</p>"
        f"<p>Rule: <code>{html.escape(rule.name)}</code> "
        f"(<code>{html.escape(rule.query)}</code>)</p>"
        f"<p><small>{html.escape(mute)}</small></p></body></html>"
    )
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = item.recipient
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = message_id(rule.name, item.story_id, item.recipient)
    msg["X-Newsmon-Rule"] = header_text(rule.name)
    msg["X-Newsmon-Story"] = header_text(item.story_id)
    msg.set_content(plain)
    msg.add_alternative(body_html, subtype="html")
    return msg


# -- delivery ----------------------------------------------------------------------------


class DeliveryError(Exception):
    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> None: ...
    def close(self) -> None: ...


@dataclass(slots=True)
class EmlMailer:
    """No SMTP configured: each email becomes ``<outbox>/<message-id>.eml``.

    Written to a temporary name and renamed, and named by the stable
    Message-ID, so a re-send replaces the same file: exactly one file per alert.
    """

    directory: Path

    def send(self, message: EmailMessage) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = str(message["Message-ID"]).strip("<>").split("@")[0]
        tmp = self.directory / f".{name}.eml.tmp"
        tmp.write_bytes(message.as_bytes())
        tmp.replace(self.directory / f"{name}.eml")

    def close(self) -> None:
        return None


@dataclass(slots=True)
class SmtpMailer:
    host: str
    port: int
    mode: str  # smtp | smtps | smtp+starttls
    username: str | None
    password: str | None
    timeout: float
    _client: smtplib.SMTP | None = None

    @classmethod
    def from_config(cls, smtp: SmtpConfig) -> SmtpMailer:
        parts = urlsplit(smtp.url)
        default_port = 465 if parts.scheme == "smtps" else 25
        return cls(host=parts.hostname or "localhost", port=parts.port or default_port,
                   mode=parts.scheme, username=smtp.username or parts.username,
                   password=smtp.password(), timeout=smtp.timeout)

    def _connect(self) -> smtplib.SMTP:
        try:
            if self.mode == "smtps":
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout,
                    context=ssl.create_default_context())
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
                if self.mode == "smtp+starttls":
                    client.starttls(context=ssl.create_default_context())
            if self.username:
                client.login(self.username, self.password or "")
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(
                f"cannot reach SMTP server {self.host}:{self.port}: {exc}"
            ) from None
        return client

    def send(self, message: EmailMessage) -> None:
        if self._client is None:
            self._client = self._connect()
        try:
            refused = self._client.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"recipient refused: {exc.recipients}", permanent=True) from None
        except (OSError, smtplib.SMTPException) as exc:
            self._client = None
            raise DeliveryError(f"SMTP delivery failed: {exc}") from None
        if refused:
            raise DeliveryError(f"recipient refused: {refused}", permanent=True)

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self._client.quit()
            self._client = None


def mailer_for(settings: Settings) -> Mailer:
    if settings.smtp is None:
        return EmlMailer(settings.outbox)
    return SmtpMailer.from_config(settings.smtp)


@dataclass(frozen=True, slots=True, kw_only=True)
class SendResult:
    sent: int
    failed: int
    pending: int


def _backoff(attempts: int) -> timedelta:
    return min(RETRY_BASE * (2 ** max(attempts - 1, 0)), RETRY_MAX)


def send_pending(
    con: duckdb.DuckDBPyConnection, settings: Settings, mailer: Mailer, *,
    now: datetime | None = None,
) -> SendResult:
    """Deliver every due outbox row; failures stay pending with their error."""
    now = now or datetime.now(UTC)
    rules = {r.name: r for r in settings.alerts}
    claimed = con.execute(
        """UPDATE alerts SET status = 'sending', attempts = attempts + 1, next_attempt_at = ?
        WHERE (status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= ?))
           OR (status = 'sending' AND next_attempt_at <= ?)
        RETURNING rule, story_id, recipient, article_id, attempts""",
        [now + STALE_CLAIM, now, now],
    ).fetchall()
    sent = failed = 0
    try:
        for rule_name, story, recipient, article_id, attempts in sorted(claimed):
            rule = rules.get(rule_name)
            if rule is None:
                con.execute(
                    "UPDATE alerts SET status = 'failed', error = ? WHERE rule = ?"
                    " AND story_id = ? AND recipient = ?",
                    [f"rule {rule_name!r} is no longer in the config", rule_name, story,
                     recipient])
                failed += 1
                continue
            articles = story_articles(con, story)
            trigger = next((a for a in articles if a.id == article_id), articles[0])
            title = con.execute("SELECT title FROM stories WHERE id = ?", [story]).fetchone()
            message = render(Outgoing(rule=rule, story_id=story,
                                      story_title=str(title[0]) if title else trigger.title,
                                      recipient=recipient, articles=tuple(articles),
                                      trigger=trigger),
                             sender=settings.smtp.sender if settings.smtp else
                             "newsmon <newsmon@localhost>")
            try:
                mailer.send(message)
            except DeliveryError as exc:
                status = "failed" if exc.permanent else "pending"
                con.execute(
                    "UPDATE alerts SET status = ?, error = ?, next_attempt_at = ?"
                    " WHERE rule = ? AND story_id = ? AND recipient = ?",
                    [status, exc.reason, now + _backoff(attempts), rule_name, story, recipient])
                log.warning("alert not delivered", extra={"rule": rule_name, "story": story,
                                                          "reason": exc.reason})
                failed += 1
                continue
            con.execute(
                "UPDATE alerts SET status = 'sent', sent_at = ?, message_id = ?, error = NULL"
                " WHERE rule = ? AND story_id = ? AND recipient = ?",
                [datetime.now(UTC), str(message["Message-ID"]), rule_name, story, recipient])
            sent += 1
    finally:
        mailer.close()
    row = con.execute("SELECT count(*) FROM alerts WHERE status = 'pending'").fetchone()
    return SendResult(sent=sent, failed=failed, pending=int(row[0]) if row else 0)

