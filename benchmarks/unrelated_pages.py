"""Unrelated reports on a young archive: how many stories the clusterer makes of them.

    .venv/bin/python -m benchmarks.unrelated_pages [--show] [--batch 10]

The pages of ``../shared/benchmarks/article-extraction`` (181 news and blog
pages of 2019 from 126 sites) and ``../shared/benchmarks/dragnet-dev`` (400
news and blog pages of 2012): nearly every page is an event of its own, so
every story of two reports or more is a candidate false merge (``--show``
prints each such story's titles, to judge it: a few pages may truly report one
event). Each page is a report with its gold text (``articleBody``), the page
``<title>`` as its headline, tagged and language-detected as the pipeline does
(``pipeline.signal.tag``, ``pipeline.content.language``), published at a time
drawn from a fixed hash of its id within ``--days`` (3), and clustered from an
empty store (the background corpus only) in publication order: one pass, and
loads of ``--batch`` articles carrying the document frequencies between them
(``benchmarks.story_quality.run``), which must agree.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import re
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from benchmarks.extraction_compare import SETS, Page, load_set
from benchmarks.story_quality import agreement, run
from pipeline.config import Settings
from pipeline.content.language import load_detector
from pipeline.models import Article
from pipeline.signal.cluster import ClusterDoc
from pipeline.signal.tag import build_tagger, tag

COMMAND = ".venv/bin/python -m benchmarks.unrelated_pages"
START = datetime(2026, 1, 5, tzinfo=UTC)
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def title_of(page: Page) -> str:
    found = _TITLE.search(page.html)
    raw = found.group(1).decode("utf-8", "replace") if found else ""
    return " ".join(html.unescape(raw).split())


def reports(name: str, pages: Sequence[Page], settings: Settings, days: float
            ) -> list[ClusterDoc]:
    """The pages as the cluster stage sees stored articles (text cut at 3,000)."""
    tagger = build_tagger(settings)
    detector = load_detector()
    out = []
    for page in pages:
        offset = int.from_bytes(hashlib.sha256(f"{name}/{page.id}".encode()).digest()[:8])
        when = START + timedelta(seconds=offset % int(days * 86400))
        title, text = title_of(page), page.truth
        language = detector.detect(f"{title}\n{text}") or ""
        article = Article(id=f"{name}/{page.id}", entry_id=page.id, feed_url="", url="",
                          canonical_url="", source=name, title=title, text=text,
                          author=None, published_at=when, fetched_at=when, language=language)
        tagged = tag(article, tagger)
        out.append(ClusterDoc(id=article.id, time=when, title=title, text=text[:3000],
                              source=name, countries=tagged.countries, people=tagged.people,
                              language=language))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    parser.add_argument("--days", type=float, default=3.0)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--show", action="store_true", help="print each merged story's titles")
    args = parser.parse_args(argv)
    settings = Settings()
    options = settings.cluster.options()
    docs: list[ClusterDoc] = []
    for name in args.sets:
        docs.extend(reports(name, load_set(name), settings, args.days))
    one_pass = run(docs, options)
    batched = run(docs, options, batch=args.batch)
    sizes = Counter(one_pass.values())
    merged = {sid: n for sid, n in sizes.items() if n >= 2}
    histogram = Counter(sizes.values())
    print("| pages | stories | stories of 2+ | pages in them | largest | sizes (size: stories) "
          f"| batching agreement ({args.batch}) |")
    print("|---:|---:|---:|---:|---:|---|---:|")
    print(f"| {len(docs)} | {len(sizes)} | {len(merged)} | {sum(merged.values())} "
          f"| {max(sizes.values(), default=0)} "
          f"| {', '.join(f'{k}: {v}' for k, v in sorted(histogram.items()))} "
          f"| {agreement(one_pass, batched):.4f} |")
    if args.show:
        by_id = {d.id: d for d in docs}
        for sid in sorted(merged, key=lambda s: (-merged[s], s)):
            print(f"\n{sid} ({merged[sid]})")
            for doc_id in sorted((d for d, s in one_pass.items() if s == sid),
                                 key=lambda d: (by_id[d].time, d)):
                print(f"  {doc_id[:40]}  {by_id[doc_id].title[:100]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
