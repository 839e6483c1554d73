"""The process stage's outputs on every benchmark page, to show a speed change changes none.

    python -m benchmarks.process_outputs dump OUT.json [--data DIR ...]
    python -m benchmarks.process_outputs compare OLD.json NEW.json

``dump`` runs :func:`pipeline.process.process_page` over every page of the
two extraction sets (ScrapingHub's 181 and dragnet-dev's 400 by default) and
writes, per page: the rejection reason, or the article (title, text, the
removed lines with their rules, language, author, date, site name), its
topics, countries and people with their evidence, and each country's and
person's mention count (:func:`~pipeline.signal.places.tag_countries`,
:func:`~pipeline.signal.people.tag_people`, which the article does not keep).
The seeds' pages go through :func:`~pipeline.process.process_page` too; the
labelled signal articles and the seeds' texts are tagged and their language
detected.

``compare`` lists every page and field that differs between two dumps and
exits 1 if any does. To compare against an older commit, run ``dump`` from an
export of it (``git archive COMMIT | tar -x -C DIR``, then ``PYTHONPATH=DIR``
with this checkout's script: only :mod:`pipeline` is taken from ``DIR``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.extraction_quality import DEFAULT_DATA, Page, load_pages
from benchmarks.processing import fetched
from pipeline.config import Settings
from pipeline.models import Article, Rejection
from pipeline.process import build_context, process_page
from pipeline.signal.people import tag_people
from pipeline.signal.places import tag_countries
from pipeline.signal.tag import Tagger, tag

SETS = (DEFAULT_DATA, DEFAULT_DATA.parent / "dragnet-dev")
ROOT = Path(__file__).resolve().parents[1]


def _tags(title: str, text: str, tagger: Tagger) -> dict[str, Any]:
    countries = tag_countries(title=title, text=text, gazetteer=tagger.gazetteer)
    people = tag_people(title=title, text=text, watchlist=tagger.watchlist)
    return {
        "countries": [[c.code, c.mentions, c.evidence] for c in countries],
        "people": [[p.name, p.mentions, p.evidence] for p in people],
    }


def _article(article: Article) -> dict[str, Any]:
    return {
        "title": article.title, "text": article.text, "language": article.language,
        "author": article.author, "source": article.source,
        "published": article.published_at.isoformat() if article.published_at else None,
        "removed": [[r.position, r.line, r.rule] for r in article.removed],
    }


def _extra_texts() -> list[tuple[str, str, str]]:
    """(id, title, text) of the labelled signal articles and the seeds (tagging only)."""
    out = []
    for path in sorted((ROOT / "benchmarks" / "signal").rglob("*.txt")) + sorted(
            (ROOT / "seeds" / "articles").rglob("*")):
        if not path.is_file() or path.suffix not in {".txt", ".md", ""}:
            continue
        raw = path.read_text(encoding="utf-8", errors="replace")
        title, _, text = raw.partition("\n")
        out.append((str(path.relative_to(ROOT)), title, text))
    return out


def dump(data: Sequence[Path]) -> dict[str, Any]:
    ctx = build_context(Settings())
    out: dict[str, Any] = {}
    for folder in data:
        pages = load_pages(folder, None)
        for page, fetched_page in zip(pages, fetched(pages), strict=True):
            key = f"{folder.name}/{page.id}"
            result = process_page(fetched_page, ctx)
            if isinstance(result, Rejection):
                out[key] = {"rejected": result.reason}
                continue
            a = result.article
            out[key] = {
                **_article(a), "topics": list(result.topics),
                "evidence": [[e.kind, e.tag, e.evidence] for e in result.evidence],
                **_tags(a.title, a.text, ctx.tagger),
            }
    seeds = sorted((ROOT / "seeds" / "site").glob("*.html"))
    for path, seed in zip(seeds, fetched([_seed_page(path) for path in seeds]), strict=True):
        result = process_page(seed, ctx)
        out[str(path.relative_to(ROOT))] = (
            {"rejected": result.reason} if isinstance(result, Rejection)
            else {**_article(result.article), "topics": list(result.topics),
                  "evidence": [[e.kind, e.tag, e.evidence] for e in result.evidence]})
    for key, title, text in _extra_texts():
        out[key] = {**_tags(title, text, ctx.tagger), "language": ctx.language.detect(text),
                    "topics": list(tag(_plain(title, text), ctx.tagger).topics)}
    return out


def _seed_page(path: Path) -> Page:
    return Page(id=path.stem, url=f"https://seeds.example/{path.name}", html=path.read_bytes(),
                truth="")


def _plain(title: str, text: str) -> Article:
    from datetime import UTC, datetime

    now = datetime(2019, 3, 1, tzinfo=UTC)
    return Article(id="x", entry_id="x", feed_url="f", url="u", canonical_url="u", source="s",
                   title=title, text=text, author=None, published_at=None, fetched_at=now,
                   language=None, removed=())


def compare(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    differences = [f"{key}: only in the old dump" for key in old.keys() - new.keys()]
    differences += [f"{key}: only in the new dump" for key in new.keys() - old.keys()]
    for key in sorted(old.keys() & new.keys()):
        a, b = old[key], new[key]
        for name in sorted(a.keys() | b.keys()):
            if a.get(name) != b.get(name):
                differences.append(f"{key}: {name}: {a.get(name)!r:.200} -> {b.get(name)!r:.200}")
    return differences


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump")
    d.add_argument("out", type=Path)
    d.add_argument("--data", type=Path, nargs="*", default=list(SETS))
    c = sub.add_parser("compare")
    c.add_argument("old", type=Path)
    c.add_argument("new", type=Path)
    args = parser.parse_args(argv)
    if args.command == "dump":
        result = dump(args.data)
        args.out.write_text(json.dumps(result, ensure_ascii=False, sort_keys=True, indent=0))
        print(f"{len(result)} pages and texts -> {args.out}")
        return 0
    old = json.loads(args.old.read_text())
    new = json.loads(args.new.read_text())
    differences = compare(old, new)
    for line in differences:
        print(line)
    print(f"{len(old.keys() & new.keys())} pages and texts compared, "
          f"{len(differences)} differences")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
