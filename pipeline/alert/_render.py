"""Rendering alert emails: multipart text + HTML.

Feed-provided text is untrusted. It is only ever HTML-escaped (never passed
through a template engine that could evaluate ``{{ ... }}``), links are shown
only when they are http(s), and CR/LF never reach a header.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import urlsplit

from pipeline.alert._queue import StoryArticle
from pipeline.config import AlertRule
from pipeline.query import Document, Hit, compile, parse

LEAD_CHARS = 600
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def message_id(rule: str, story_id: str, recipient: str, update_no: int = 0) -> str:
    """Stable per outbox row, so a re-send after a crash is the same message."""
    key = f"{rule}\x00{story_id}\x00{recipient}" + (f"\x00{update_no}" if update_no else "")
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@newsmon>"


def header_text(value: str, limit: int = 200) -> str:
    """Feed text bound for a header: no CR/LF (header injection), bounded length."""
    cleaned = " ".join(_CONTROL.sub(" ", value).split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def safe_link(url: str) -> str | None:
    """Only http(s) links reach an email; javascript:, data: and the like are dropped."""
    return url if urlsplit(url).scheme in ("http", "https") else None


def lead_of(text: str) -> str:
    lead = ""
    for paragraph in (p.strip() for p in text.splitlines()):
        if paragraph:
            lead = f"{lead}\n{paragraph}".strip()
            if len(lead) >= LEAD_CHARS // 2:
                break
    return lead if len(lead) <= LEAD_CHARS else lead[: LEAD_CHARS - 1].rsplit(" ", 1)[0] + "…"


def highlight(text: str, hits: Sequence[Hit]) -> str:
    """HTML-escape ``text`` and wrap the matched spans in <mark>."""
    out, pos = [], 0
    for hit in sorted(hits, key=lambda h: (h.start, -h.end)):
        if hit.start < pos or hit.end > len(text):
            continue
        out.append(html.escape(text[pos:hit.start]))
        out.append(f"<mark>{html.escape(text[hit.start:hit.end])}</mark>")
        pos = hit.end
    out.append(html.escape(text[pos:]))
    return "".join(out)


def _lead_html(article: StoryArticle, lead: str, rule: AlertRule) -> str:
    doc = article.document()
    matcher = compile(parse(rule.query))
    paragraphs = []
    for paragraph in lead.splitlines():
        hits = [h for h in matcher.hits(Document(
            title="", text=paragraph, source=doc.source, language=doc.language,
            topics=doc.topics, countries=doc.countries, people=doc.people,
        )) if h.field == "text"]
        paragraphs.append(f"<p>{highlight(paragraph, hits)}</p>")
    return "".join(paragraphs)


def _link_html(article: StoryArticle, *, new: bool) -> str:
    link = safe_link(article.url)
    title = html.escape(article.title)
    anchor = f'<a href="{html.escape(link, quote=True)}">{title}</a>' if link else title
    mark = " <b>(new)</b>" if new else ""
    return f"<li><b>{html.escape(article.source)}</b>: {anchor}{mark}</li>"


def _link_text(article: StoryArticle, *, new: bool) -> str:
    link = safe_link(article.url) or "(link withheld: not http/https)"
    return f"- {article.source}: {article.title}{' (new)' if new else ''}\n  {link}"


def _mute(rule: AlertRule) -> str:
    return f"To mute it, remove the rule '{rule.name}' from alerts: in your newsmon config."


def _base_message(subject: str, *, sender: str, recipient: str, msgid: str,
                  rule: AlertRule) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = header_text(subject)
    msg["From"] = sender
    msg["To"] = recipient
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = msgid
    msg["X-Newsmon-Rule"] = header_text(rule.name)
    return msg


@dataclass(frozen=True, slots=True, kw_only=True)
class Outgoing:
    """One instant alert (``update_no`` 0) or an update of it."""

    rule: AlertRule
    story_id: str
    story_title: str
    recipient: str
    articles: tuple[StoryArticle, ...]
    trigger: StoryArticle
    update_no: int = 0
    new_ids: frozenset[str] = field(default_factory=frozenset)


def render(item: Outgoing, *, sender: str) -> EmailMessage:
    rule, trigger = item.rule, item.trigger
    title = item.story_title or trigger.title or "New story"
    lead = lead_of(trigger.text)
    sources = sorted({a.source for a in item.articles})
    topics = sorted({t for a in item.articles for t in a.topics})
    update = item.update_no > 0
    intro = (f"Update: {len(item.new_ids)} new report(s); {len(sources)} source(s) in all."
             if update else f"New story, reported by {len(sources)} source(s).")

    text = [title, "", intro, "", lead, "", "Sources:"]
    text += [_link_text(a, new=a.id in item.new_ids) for a in item.articles]
    text += ["", f"Topics: {', '.join(topics) or '-'}", f"Rule: {rule.name} ({rule.query})",
             "", _mute(rule)]
    body_html = (
        f"<html><body><h2>{html.escape(title)}</h2><p><i>{html.escape(intro)}</i></p>"
        f"{_lead_html(trigger, lead, rule)}"
        f"<h3>Sources ({len(sources)})</h3><ul>"
        + "".join(_link_html(a, new=a.id in item.new_ids) for a in item.articles)
        + f"</ul><p>Topics: {html.escape(', '.join(topics) or '-')}</p>"
        f"<p>Rule: <code>{html.escape(rule.name)}</code> "
        f"(<code>{html.escape(rule.query)}</code>)</p>"
        f"<p><small>{html.escape(_mute(rule))}</small></p></body></html>"
    )
    msg = _base_message(("Re: " if update else "") + title, sender=sender,
                        recipient=item.recipient, rule=rule,
                        msgid=message_id(rule.name, item.story_id, item.recipient,
                                         item.update_no))
    msg["X-Newsmon-Story"] = header_text(item.story_id)
    if update:
        # Threaded under the first alert and every update before this one.
        first = message_id(rule.name, item.story_id, item.recipient)
        msg["In-Reply-To"] = first
        msg["References"] = " ".join(
            message_id(rule.name, item.story_id, item.recipient, n)
            for n in range(item.update_no)
        )
    msg.set_content("\n".join(text) + "\n")
    msg.add_alternative(body_html, subtype="html")
    return msg


@dataclass(frozen=True, slots=True, kw_only=True)
class DigestStory:
    story_id: str
    title: str
    first_seen: datetime | None
    articles: tuple[StoryArticle, ...]


def digest_id(rule: str, recipient: str, period_start: datetime) -> str:
    return message_id(rule, f"digest:{period_start.isoformat()}", recipient)


def render_digest(rule: AlertRule, recipient: str, stories: Sequence[DigestStory], *,
                  period_start: datetime, sender: str) -> EmailMessage:
    """One email per rule, recipient and period: stories newest first, with counts."""
    ordered = sorted(stories, key=lambda s: (s.first_seen is not None, s.first_seen),
                     reverse=True)
    n_articles = sum(len(s.articles) for s in ordered)
    when = period_start.strftime("%Y-%m-%d %H:%M UTC" if rule.period == "hourly"
                                 else "%Y-%m-%d")
    subject = f"{rule.name}: {len(ordered)} new stor{'y' if len(ordered) == 1 else 'ies'}" \
              f" ({rule.period} digest, {when})"
    text = [subject, f"{len(ordered)} stories, {n_articles} reports.", ""]
    parts = []
    for story in ordered:
        sources = sorted({a.source for a in story.articles})
        text.append(f"* {story.title} ({len(story.articles)} reports, {len(sources)} sources)")
        text += ["  " + line for a in story.articles for line in
                 _link_text(a, new=False).splitlines()]
        text.append("")
        parts.append(
            f"<h3>{html.escape(story.title)}</h3><p>{len(story.articles)} reports, "
            f"{len(sources)} sources</p><ul>"
            + "".join(_link_html(a, new=False) for a in story.articles) + "</ul>"
        )
    text += [f"Rule: {rule.name} ({rule.query})", "", _mute(rule)]
    msg = _base_message(subject, sender=sender, recipient=recipient, rule=rule,
                        msgid=digest_id(rule.name, recipient, period_start))
    msg.set_content("\n".join(text) + "\n")
    msg.add_alternative(
        f"<html><body><h2>{html.escape(subject)}</h2>"
        f"<p>{len(ordered)} stories, {n_articles} reports.</p>{''.join(parts)}"
        f"<p>Rule: <code>{html.escape(rule.name)}</code> (<code>{html.escape(rule.query)}"
        f"</code>)</p><p><small>{html.escape(_mute(rule))}</small></p></body></html>",
        subtype="html",
    )
    return msg
