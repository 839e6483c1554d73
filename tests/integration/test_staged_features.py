"""An article's clustering features are computed in the process stage's
workers and staged with it (pipeline.signal.cluster.staged_features); the
cluster stage uses them only where they were made, by this code, from the
fields it reads, and computes them otherwise: the same stories either way."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support import factories as f

from integration.test_load import reports, table
from pipeline import store
from pipeline.config import parse_settings
from pipeline.models import FeedEntry, FetchedPage, TaggedArticle
from pipeline.process import build_context, process_page
from pipeline.signal import cluster as cluster_module
from pipeline.signal.cluster import (
    PLAN_TEXT_CHARS,
    ClusterDoc,
    features,
    features_of,
    input_crc,
    staged_features,
)
from pipeline.stages import record_outcome
from pipeline.store import staging
from pipeline.store.load import load

SEEDS = Path(__file__).resolve().parents[2] / "seeds"


def _staged(record: dict[str, Any]) -> dict[str, object]:
    return staged_features(record["id"], record["title"], record["text"], record["countries"],
                           record["people"], record["language"])


def _stage_with_features(settings: Any, run_id: str, records: list[dict[str, Any]],
                         made: list[dict[str, object]]) -> None:
    f.stage(settings, run_id, records)
    directory = staging.run_dir(settings.staging, run_id)
    with staging.StagingWriter(directory, "p001") as writer:
        for record in made:
            writer.write("features", record)


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids whose features the cluster stage computes itself."""
    computed: list[str] = []
    real = cluster_module.features

    def counted(doc: ClusterDoc) -> Any:
        computed.append(doc.id)
        return real(doc)

    monkeypatch.setattr(cluster_module, "features", counted)
    return computed


def _stories_and_states(settings: Any) -> tuple[list[tuple[object, ...]], ...]:
    with store.connect(settings.database, read_only=True) as con:
        return (table(con, "SELECT id, story_id FROM articles ORDER BY id"),
                table(con, "SELECT * FROM story_state ORDER BY story_id"),
                table(con, "SELECT * FROM term_stats ORDER BY term"))


@pytest.mark.parametrize("text", [
    "Seed", "short text, no signature", "Ünïcödé — «quotes» 😀 and 数字 12,5 " * 40,
    "word " * 2000,  # beyond PLAN_TEXT_CHARS
])
def test_staged_features_read_back_are_the_computed_ones_to_the_bit(text: str) -> None:
    doc = ClusterDoc(id="a1", time=datetime(2019, 3, 1, tzinfo=UTC), title="Putin Meets Netanyahu",
                     text=text[:PLAN_TEXT_CHARS], source="", countries=("IL", "RU"),
                     people=("Vladimir Putin",), language="EN")
    record = json.loads(json.dumps(staged_features("a1", doc.title, text, doc.countries,
                                                   doc.people, doc.language)))
    assert record["crc"] == input_crc(doc)
    got, want = features_of(record), features(doc)
    assert got is not None
    assert list(got.terms.items()) == list(want.terms.items())  # order and weights
    assert (got.names, got.language) == (want.names, want.language)
    if want.signature is None:
        assert got.signature is None
    else:
        assert got.signature is not None and got.signature.dtype == np.uint64
        assert np.array_equal(got.signature, want.signature)
    assert features_of({**record, "v": record["v"] + 1}) is None  # made by other code


def test_a_plan_uses_the_staged_features_and_stores_the_same_stories(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    computed = _counting(monkeypatch)
    plain, staged = f.settings(tmp_path / "plain"), f.settings(tmp_path / "staged")
    f.stage(plain, "run-1", reports())
    _stage_with_features(staged, "run-1", reports(), [_staged(r) for r in reports()])
    computed.clear()  # (staged_features computes them, as the process stage does)
    with store.connect(plain.database) as con:
        load(con, plain, "run-1")
    assert sorted(computed) == sorted(str(r["id"]) for r in reports())
    computed.clear()
    with store.connect(staged.database) as con:
        load(con, staged, "run-1")
    assert computed == []
    assert _stories_and_states(plain) == _stories_and_states(staged)


def test_features_staged_from_other_fields_are_not_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second report staged with features made from the third's text (a
    stage of another version of the article): used, it would leave its story.
    Tampered but made from its own fields, they are used: the mechanism is on."""
    computed = _counting(monkeypatch)
    first, second, third = reports()
    plain = f.settings(tmp_path / "plain")
    f.stage(plain, "run-1", [first, second])
    other = _staged({**second, "text": third["text"], "title": third["title"]})
    wrong = f.settings(tmp_path / "wrong")
    _stage_with_features(wrong, "run-1", [first, second], [_staged(first), other])
    with store.connect(plain.database) as con:
        load(con, plain, "run-1")
    computed.clear()
    with store.connect(wrong.database) as con:
        load(con, wrong, "run-1")
    assert computed == [second["id"]]
    assert _stories_and_states(plain) == _stories_and_states(wrong)
    assert len({story for _, story in _stories_and_states(plain)[0]}) == 1
    # The same wrong features under the second report's own CRC: taken as
    # given, and the report goes to a story of its own.
    tampered = f.settings(tmp_path / "tampered")
    _stage_with_features(tampered, "run-1", [first, second],
                         [_staged(first), {**other, "crc": _staged(second)["crc"]}])
    with store.connect(tampered.database) as con:
        load(con, tampered, "run-1")
        assert table(con, "SELECT count(DISTINCT story_id) FROM articles") == [(2,)]


def test_the_process_stage_stages_each_articles_features(tmp_path: Path) -> None:
    page = (SEEDS / "site" / "amn-netanyahu-russia-pullout.html").read_bytes()
    entry = FeedEntry(id="amn-1", feed_url="http://127.0.0.1:8000/feed.xml", feed_name="AMN",
                      url="http://127.0.0.1:8000/amn", title="", summary="", published_at=None)
    outcome = process_page(FetchedPage(entry=entry, url=entry.url, status=200,
                                       content_type="text/html; charset=utf-8", body=page,
                                       fetched_at=datetime(2019, 3, 3, tzinfo=UTC)),
                           build_context(parse_settings({})))
    assert isinstance(outcome, TaggedArticle)
    a = outcome.article
    assert outcome.cluster_features == staged_features(a.id, a.title, a.text, outcome.countries,
                                                       outcome.people, a.language)
    settings = f.settings(tmp_path)
    directory = staging.run_dir(settings.staging, "run-1")
    with staging.StagingWriter(directory, "p000") as writer:
        record_outcome(writer, entry, outcome, 1, {"entries": 0, "articles": 0},
                       datetime(2019, 3, 3, tzinfo=UTC))
    (written,) = staging.read(directory, "features")
    assert written == json.loads(json.dumps(outcome.cluster_features))


def test_a_real_pass_clusters_every_new_article_from_its_staged_features(
        tmp_path: Path, seed_site: Any, smtp_server: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    """The seeds through the whole pass (poll, fetch, the process stage's
    worker, the plan): the plan computes no article's features itself."""
    from integration.test_end_to_end import make_settings
    from pipeline.run import run_pass

    caplog.set_level("INFO", logger="pipeline.store.plan")
    result = run_pass(make_settings(tmp_path, seed_site, smtp_server))
    assert result.load.articles_new == 5
    (clustered,) = [r for r in caplog.records if r.getMessage() == "clustered"]
    assert (clustered.new, clustered.features_staged) == (5, 5)


def test_features_made_from_the_fields_split_otherwise_are_not_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fields hashed as one string joined by a separator: a title with
    that separator in it (a control character a page may carry) and a text
    without it gave the same string as the title cut there and the rest put
    before the text, so features made from those other fields were taken as
    the article's own (and a 32-bit CRC lets any two versions of one page
    collide once in ~4e9). Each field is framed by its length now."""
    computed = _counting(monkeypatch)
    first, second, third = reports()
    head, tail = "Netanyahu: Russia and Israel", "agree on Syria pullout group"
    odd = {**second, "title": f"{head}\x1f{tail}"}
    # The same characters, the cut elsewhere: another article to the clusterer.
    other = _staged({**odd, "title": head, "text": f"{tail}\x1f{odd['text']}"})
    plain = f.settings(tmp_path / "plain")
    f.stage(plain, "run-1", [first, odd, third])
    with store.connect(plain.database) as con:
        load(con, plain, "run-1")
    split = f.settings(tmp_path / "split")
    _stage_with_features(split, "run-1", [first, odd, third],
                         [_staged(first), other, _staged(third)])
    computed.clear()
    with store.connect(split.database) as con:
        load(con, split, "run-1")
    assert computed == [odd["id"]]
    assert _stories_and_states(plain) == _stories_and_states(split)


def test_the_features_code_is_the_one_its_version_names() -> None:
    """Staged features are trusted by FEATURES_VERSION: a change to what they
    are made of (LEAD_WORDS, the stop words, the tokens, the MinHash
    constants, the record's form) must bump it, or features staged before a
    deploy would be used after it. This digest of one record fails on any
    such change: bump FEATURES_VERSION, then write the new digest here."""
    import hashlib

    from pipeline.signal.cluster import FEATURES_VERSION

    text = ("Russian President Vladimir Putin and Israeli Prime Minister Benjamin Netanyahu "
            "agreed in Moscow on 27 February 2019 to set up a working group, with other "
            "parties, on the withdrawal of foreign forces from Syria, Netanyahu said on 3 March "
            "at the weekly cabinet meeting in Jerusalem. ") * 3
    record = staged_features("a1", "Russia and Israel to form working group on foreign forces "
                             "in Syria", text, ("IL", "RU", "SY"),
                             ("Vladimir Putin", "Benjamin Netanyahu"), "en")
    digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()
    assert (FEATURES_VERSION, digest) == (
        2, "fe2fa2069ad29f91f2e42172a5c1c3047642823807cfb0cef127a1a2cf29d602")
