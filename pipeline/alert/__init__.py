"""Alert stage: an outbox of (rule, story, recipient) rows, and a sender.

The cluster stage works out :func:`candidates` (which rule fires on which
story) before the load; :func:`queue` writes the rows from them inside the
load transaction, so a story is never stored without its alerts, nor alerted
without being stored. The key
(rule, story_id, recipient, update_no) makes a story alert once per rule and
recipient however many outlets report it; ``updates: true`` rules add one
threaded update when a story grows.

The sender (:func:`send_pending`) claims due rows, delivers, and marks them
``sent`` with their Message-ID, derived from the row key. On the DuckDB file
it claims and renders in one short writer session (:func:`claim`), delivers
with the file closed, recording each outcome in a journal beside the file as
it comes, and marks the rows from it in a second short one (:func:`record`). The guarantee:
nothing is lost (a 4xx reply or the server down: rows stay pending with the
error and are retried with backoff; a 5xx reply: ``failed`` with the reply);
at most once per claim (two senders never hold the same row while its lease
runs); at least once overall: a duplicate is possible only if a sender dies
(or cannot write the database) after the SMTP server accepted a message and
before the outcome was recorded (the journal's fsync on the file, the mark
in a lake's PostgreSQL), or the connection drops after the end of DATA, and
the re-send then carries the same Message-ID.
"""

from pipeline.alert._deliver import DeliveryError, EmlMailer, Mailer, SmtpMailer, mailer_for
from pipeline.alert._queue import (
    STORY_ARTICLE_COLUMNS,
    BacktestHit,
    Candidate,
    StoryArticle,
    backtest,
    candidates,
    matching_article,
    named_rows,
    period_bounds,
    queue,
    story_article,
    story_articles,
)
from pipeline.alert._render import (
    DigestStory,
    Outgoing,
    header_text,
    message_id,
    render,
    render_digest,
    safe_link,
)
from pipeline.alert._send import (
    STALE_CLAIM,
    Journaled,
    SendResult,
    SendRound,
    claim,
    journaled,
    lease_for,
    record,
    send_pending,
)

__all__ = [
    "STALE_CLAIM", "STORY_ARTICLE_COLUMNS", "BacktestHit", "Candidate", "DeliveryError",
    "DigestStory", "EmlMailer", "Journaled", "Mailer", "Outgoing", "SendResult", "SendRound",
    "SmtpMailer", "StoryArticle", "backtest", "candidates", "claim", "header_text",
    "journaled", "lease_for", "mailer_for", "matching_article", "message_id", "named_rows",
    "period_bounds", "queue", "record", "render", "render_digest", "safe_link",
    "send_pending", "story_article", "story_articles",
]
