"""Deterministic synthetic news: distinct events, each reported by a few outlets.

The load and end-to-end benchmarks need articles that look to clustering and
tagging like production does, not a tiny vocabulary that makes every article
look alike (they then form a few giant stories, and clustering time is
quadratic in a story's size). So:

- a vocabulary of thousands of made-up content words with Zipf frequencies
  (a few common, a long tail of rare ones), English function words between
  them, and real topic words, country names and watchlist people;
- **events**: each has its own rare keywords, one or two countries, maybe a
  person, and a few figures; an event is reported by 1 to 4 outlets within a
  day, each report with its own title and wording but the event's keywords
  in its title and lead, like real reports of one event;
- background paragraphs drawn from the whole vocabulary.

``Article`` records are plain data; :func:`page_html` wraps one in a news
page template (navigation, share buttons, related links, footer) for the
fetch and extract stages.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape

T0 = datetime(2019, 2, 27, 12, tzinfo=UTC)

_SYLLABLES = [c + v for c in "bcdfghjklmnprstvz" for v in "aeiou"] + [
    "an", "el", "or", "us", "ir", "ost", "ent", "ing", "ers", "ion"
]
_FUNCTION = (  # noqa: SIM905 (a word list reads better so)
    "the of and to in a for on that with as by at from is was were has have had "
             "will would its their this which after over about into than but also more "
             "who been not they said are an be or it new two three last said week"
             ).split()
_TOPICAL = (  # noqa: SIM905
    "election vote parliament minister government troops forces border ceasefire "
            "sanctions protest court ruling summit refugees army budget energy trade oil "
            "market bank flood storm drought harvest strike talks agreement negotiations "
            "police arrest attack militants inflation currency exports tariff vaccine "
            "hospital outbreak earthquake reactor missile navy airline pipeline").split()
COUNTRIES = ("Syria", "Israel", "Russia", "France", "Germany", "Turkey", "Iran", "Egypt",
             "India", "China", "Japan", "Brazil", "Nigeria", "Kenya", "Mexico", "Canada",
             "Ukraine", "Poland", "Spain", "Italy", "Pakistan", "Indonesia", "Vietnam",
             "Argentina", "Algeria", "Iraq", "Jordan", "Lebanon", "Venezuela", "Ethiopia")
PEOPLE = ("Vladimir Putin", "Emmanuel Macron", "Recep Tayyip Erdogan", "Narendra Modi",
          "Benjamin Netanyahu", "Xi Jinping", "Angela Merkel", "Antonio Guterres")
OUTLETS = 60
_POOL = 400_000


def _vocabulary(rng: random.Random, size: int) -> list[str]:
    words: dict[str, None] = {}
    while len(words) < size:
        words["".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))] = None
    return list(words)


@dataclass(frozen=True, slots=True, kw_only=True)
class Article:
    n: int
    event: int
    outlet: int
    title: str
    paragraphs: tuple[str, ...]
    published_at: datetime
    countries: tuple[str, ...]
    people: tuple[str, ...]

    @property
    def source(self) -> str:
        return f"Outlet {self.outlet}"

    @property
    def text(self) -> str:
        return "\n".join(self.paragraphs)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Event:
    keywords: tuple[str, ...]
    topical: tuple[str, ...]
    countries: tuple[str, ...]
    people: tuple[str, ...]
    numbers: tuple[str, ...]
    time: datetime


class Newsroom:
    """Makes articles by number; the same seed gives the same articles.

    Articles come in groups of four consecutive numbers, and each group is
    split into one to four events (a group of one event: four outlets
    reported it; four events: one report each). ``articles_per_hour`` sets
    how many articles one hour of publication holds, so how many articles a
    clustering window of a few days compares.
    """

    _SPLITS = ((4,), (3, 1), (2, 2), (2, 1, 1), (1, 1, 1, 1), (1, 1, 1, 1), (2, 1, 1))

    def __init__(self, seed: int = 7, *, vocabulary: int = 6000,
                 articles_per_hour: float = 100.0) -> None:
        self.seed = seed
        rng = random.Random(seed)
        self.words = _vocabulary(rng, vocabulary)
        # Sentences are runs of this stream of words (Zipf-distributed, with
        # function words between them): drawing each word on its own made
        # a page cost 1.5 ms to write, and the local server writes them.
        cumulative = list(itertools.accumulate(1 / (r + 1) for r in range(vocabulary)))
        content = rng.choices(self.words, cum_weights=cumulative, k=_POOL)
        function = rng.choices(_FUNCTION, k=_POOL)
        self._pool = [f if rng.random() < 0.45 else w for w, f in zip(content, function,
                                                                         strict=True)]
        self._hours_per_group = 4 / articles_per_hour

    def _sentence(self, rng: random.Random, must: list[str], length: int) -> str:
        start = rng.randrange(len(self._pool) - length)
        words = self._pool[start:start + length]
        for word in must:
            words.insert(rng.randrange(len(words) + 1), word)
        sentence = " ".join(words)
        return sentence[0].upper() + sentence[1:] + "."

    def _event(self, group: int, sub: int) -> _Event:
        rng = random.Random(f"{self.seed}-event-{group}-{sub}")
        start = T0 + timedelta(hours=group * self._hours_per_group)
        return _Event(
            keywords=tuple(self.words[rng.randrange(500, len(self.words))] for _ in range(6)),
            topical=tuple(rng.sample(_TOPICAL, 2)),
            countries=tuple(rng.sample(COUNTRIES, rng.randint(1, 2))),
            people=(rng.choice(PEOPLE),) if rng.random() < 0.3 else (),
            numbers=tuple(str(rng.randint(3, 5000)) for _ in range(2)),
            time=start + timedelta(hours=rng.uniform(0, self._hours_per_group)),
        )

    def event_of(self, n: int) -> tuple[int, int]:
        group, slot = divmod(n, 4)
        split = random.Random(f"{self.seed}-split-{group}").choice(self._SPLITS)
        for sub, size in enumerate(split):
            if slot < size:
                return group, sub
            slot -= size
        raise AssertionError("unreachable")

    def article(self, n: int, *, lead_only: bool = False) -> Article:
        """Article ``n``; with ``lead_only`` just its title and first paragraph (a
        feed item needs no more, and costs a tenth of the time)."""
        group, sub = self.event_of(n)
        return self._report(random.Random(f"{self.seed}-article-{n}"), n, group * 4 + sub,
                            self._event(group, sub), lead_only=lead_only)

    def articles(self, n: int) -> list[Article]:
        return [self.article(i) for i in range(n)]

    def _report(self, rng: random.Random, n: int, event_no: int, event: _Event, *,
                lead_only: bool) -> Article:
        key = list(event.keywords)
        named = list(event.countries) + list(event.people)
        outlet = rng.randrange(OUTLETS)
        published = event.time + timedelta(minutes=rng.uniform(0, 20 * 60))
        title_words = [*rng.sample(key, 2), event.topical[0], event.countries[0]]
        title = self._sentence(rng, title_words, rng.randint(3, 6)).rstrip(".")
        lead = " ".join([
            self._sentence(rng, rng.sample(key, 3) + named + [event.numbers[0]], 14),
            self._sentence(rng, rng.sample(key, 2) + list(event.topical), 16),
        ])
        paragraphs = [lead]
        for _ in range(0 if lead_only else rng.randint(6, 12)):
            sentences = []
            for _ in range(rng.randint(2, 4)):
                must = [rng.choice(key)] if rng.random() < 0.3 else []
                if rng.random() < 0.15:
                    must.append(rng.choice(event.numbers))
                sentences.append(self._sentence(rng, must, rng.randint(10, 24)))
            paragraphs.append(" ".join(sentences))
        return Article(
            n=n, event=event_no, outlet=outlet, title=title, paragraphs=tuple(paragraphs),
            published_at=published, countries=event.countries, people=event.people,
        )


_NAV = "".join(f'<li class="nav-item"><a class="nav-link" href="/section/{s}">{s.title()}</a></li>'
               for s in ("world", "politics", "business", "technology", "science", "health",
                         "sport", "culture", "opinion", "video", "podcasts", "weather"))
# Real article pages are mostly markup and scripts around a few kB of text
# (the 181 benchmark pages: 110 kB of HTML on average); 30-40 kB keeps the
# parser's share of the work realistic without making the server the story.
_SCRIPT = "window.__CONFIG__=" + repr({f"key{i}": "x" * 40 for i in range(150)}) + ";"
_FOOTER = "".join(f'<li><a href="/{w}">{w.title()}</a></li>' for w in (
    "about", "contact", "privacy", "terms", "cookies", "advertise", "careers", "archive",
    "newsletters", "corrections", "accessibility", "sitemap"))


def page_html(article: Article, *, url: str, related: list[tuple[str, str]]) -> bytes:
    """A news page around ``article``: what a CMS serves, boilerplate included."""
    body = "\n".join(f"<p>{escape(p)}</p>" for p in article.paragraphs)
    links = "".join(f'<li class="related"><a href="{escape(u)}"><span>{escape(t)}</span></a>'
                    f'<time>2 hours ago</time></li>' for u, t in related)
    published = article.published_at.isoformat()
    title = escape(article.title)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} | {article.source}</title>
<meta property="og:title" content="{title}">
<meta property="og:site_name" content="{article.source}">
<meta property="og:url" content="{escape(url)}">
<meta property="og:type" content="article">
<meta property="article:published_time" content="{published}">
<link rel="canonical" href="{escape(url)}">
<style>body{{font-family:serif;margin:0}} .nav-item{{display:inline-block;padding:4px}}
.related span{{font-weight:bold}} footer li{{display:inline;margin-right:8px}}</style>
<script>{_SCRIPT}</script>
</head><body class="article-page">
<div class="cookie-banner">We use cookies to improve your experience.
<button>Accept</button></div>
<header class="site-header"><div class="logo"><a href="/">{article.source}</a></div>
<nav><ul class="nav">{_NAV}</ul></nav>
<form action="/search"><input name="q" placeholder="Search"><button>Go</button></form></header>
<main class="content"><article class="story">
<div class="breadcrumbs"><a href="/">Home</a> &gt; <a href="/section/world">World</a></div>
<h1 class="headline">{title}</h1>
<div class="byline">By <span class="author">Staff Reporter</span>,
<time datetime="{published}">{article.published_at:%d %B %Y %H:%M}</time></div>
<div class="share"><a href="#">Share on Facebook</a> <a href="#">Share on Twitter</a>
<a href="#">Email</a> <a href="#">Print</a></div>
<figure><img src="/img/{article.n}.jpg" alt=""><figcaption>Photo: agency</figcaption></figure>
<div class="article-body">
{body}
</div>
<div class="tags">Topics: <a href="/t/world">World</a> <a href="/t/news">News</a></div>
</article>
<aside class="sidebar"><h2>Related stories</h2><ul>{links}</ul>
<div class="newsletter">Sign up for our daily newsletter. <a href="/subscribe">Subscribe</a></div>
<div class="most-read"><h2>Most read</h2><ol>{links}</ol></div>
</aside></main>
<footer><p>&copy; 2019 {article.source}. All rights reserved.</p><ul>{_FOOTER}</ul>
</footer></body></html>
""".encode()
