"""The parser's look for a GUID equal to another item's link, beside the whole parse.

    PYTHONPATH=. nice -n 5 .venv/bin/python -m benchmarks.guid_links

Both are timed in one process on the same 100-item RSS document (a GUID on
every item, on every other, on none): compare the share, not the times.
Not part of ``python -m benchmarks`` (BENCHMARKS.md, session 23).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from functools import partial

import feedparser

from pipeline.sources import parsing

URL = "https://wire.example.org/feed.xml"


def rss(n: int, mode: str) -> bytes:
    def guid(i: int) -> str:
        given = mode == "all" or (mode == "half" and i % 2)
        return f'<guid isPermaLink="false">w-{i}</guid>' if given else ""

    items = "".join(
        f"<item><title>Report {i}</title><link>https://wire.example.org/news/{i}-a-slug</link>"
        f"{guid(i)}<description>Summary {i} {'words ' * 40}</description></item>"
        for i in range(n))
    return ('<?xml version="1.0"?><rss version="2.0"><channel><title>W</title>'
            f"{items}</channel></rss>").encode()


def best(fn: Callable[[], object], *, repeat: int = 15, number: int = 20) -> float:
    fastest = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(number):
            fn()
        fastest = min(fastest, (time.perf_counter() - started) / number)
    return fastest


def main() -> None:
    print("| feed (100 items) | parse_feed, ms | _guid_links, ms | share |")
    print("|---|---|---|---|")
    for mode in ("all", "half", "none"):
        body = rss(100, mode)
        entries = list(feedparser.parse(io.BytesIO(body)).entries)
        whole = best(partial(parsing.parse_feed, body, url=URL, name="W", max_entries=200))
        look = best(partial(parsing._guid_links, entries, URL, 20480), number=200)
        print(f"| GUIDs: {mode} | {whole * 1000:.2f} | {look * 1000:.3f} | {look / whole:.1%} |")


if __name__ == "__main__":
    main()
