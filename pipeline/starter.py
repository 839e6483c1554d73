"""``newsmon init``: a commented starter ``newsmon.yaml`` for a new user.

It must stay a valid config (a test loads it): feeds, one topic, one alert,
and the SMTP section left out (alerts are then written as .eml files).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["STARTER_CONFIG", "StarterExists", "write_starter"]

STARTER_CONFIG = """\
# newsmon configuration: written by `newsmon init`. Every key and its default:
# see "Configuration" in newsmon's README. Relative paths are relative to this file.

# The DuckDB file that keeps everything (created by the first pass).
database: news.duckdb

# RSS or Atom feeds to poll (http or https). More from the command line:
#   newsmon feeds add URL      newsmon feeds import subscriptions.opml
feeds:
  - url: https://feeds.bbci.co.uk/news/world/rss.xml
    name: BBC World
  - url: https://www.aljazeera.com/xml/rss/all.xml
    name: Al Jazeera
  - url: https://www.france24.com/en/rss
    name: France 24

# Your own topics, added to the shipped ones (pipeline/data/topics.yaml), in
# the query language: words, "phrases", AND / OR / NOT, prefix*, and fields
# such as title:, source:, lang:, country: (ISO codes) and person:.
topics:
  energy-prices: '(gas OR oil OR electricity) AND (price* OR tariff*)'

# Saved searches that email you when a new story matches: one email per story,
# not one per outlet.
alerts:
  - name: energy-prices
    query: 'topic:energy-prices'
    to: [you@example.org]
    min_sources: 2            # wait until two outlets report the story

# No smtp: section, so alert emails are written as .eml files to ./outbox/
# (open them with any mail client). To send them, add for example:
#   smtp:
#     url: smtp+starttls://smtp.example.org:587
#     username: newsmon
#     sender: 'newsmon <newsmon@example.org>'
# and put the password in the environment: NEWSMON_SMTP_PASSWORD (never here).
"""


class StarterExists(Exception):
    """The file is there already; newsmon init never overwrites it."""


def write_starter(path: Path) -> None:
    """Write the starter config to ``path``; raises StarterExists if it exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: refused if the file exists, even one created a moment ago.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise StarterExists(f"{path} exists already; newsmon init does not overwrite it "
                            "(edit it, or pass --config NEW_FILE)") from None
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(STARTER_CONFIG)
