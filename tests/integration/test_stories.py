"""Stories through the real cluster and load stages: plan (read-only) then the one
load transaction, as `newsmon run` and the DAG run them (issue 13)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from support import factories as f
from support.factories import WIRE
from support.unrelated import made_up_reports

from pipeline import store
from pipeline.config import Settings
from pipeline.run import send_stage
from pipeline.store.load import load
from pipeline.store.plan import plan

RULE = {"name": "syria", "query": "topic:syria", "to": ["analyst@example.org"]}


def copies(n: int, *, start: int = 0) -> list[dict[str, Any]]:
    """One wire report carried by ``n`` outlets within four hours, each copy with its
    own headline, URL and a line of its site's chrome before and after."""
    return [f.article(i, title=f"Outlet {i}: U.S. to keep troops in Syria",
                      text=f"Outlet {i} news desk.\n{WIRE}\nRead more from outlet {i}.",
                      source=f"Outlet {i}", topics=("syria",), countries=("US", "SY"),
                      hours=4 * (i % 97) / 97)
            for i in range(start, start + n)]


def run(settings: Settings, run_id: str, articles: list[dict[str, Any]]) -> None:
    f.stage(settings, run_id, articles)
    with store.connect(settings.database) as con:
        plan(con, settings, run_id)
        load(con, settings, run_id)


def counts(settings: Settings) -> tuple[int, int, int]:
    with duckdb.connect(str(settings.database), read_only=True) as con:
        row = con.execute("SELECT (SELECT count(*) FROM articles),"
                          " (SELECT count(DISTINCT story_id) FROM articles),"
                          " (SELECT count(*) FROM alerts)").fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


@pytest.mark.parametrize("n", [1, 20, 100, 1000])
def test_syndicated_copies_are_one_story_and_one_email(tmp_path: Path, n: int,
                                                        smtp_server: Any) -> None:
    settings = f.settings(tmp_path, alerts=[RULE], smtp={"url": smtp_server.url})
    run(settings, "run-1", copies(n))
    assert counts(settings) == (n, 1, 1)
    assert send_stage(settings).sent == 1
    assert len(smtp_server.messages) == 1


def test_copies_in_a_later_pass_join_the_story_and_send_nothing_new(tmp_path: Path) -> None:
    settings = f.settings(tmp_path, alerts=[RULE])
    run(settings, "run-1", copies(60))
    run(settings, "run-2", copies(90, start=60))
    assert counts(settings) == (150, 1, 1)
    with duckdb.connect(str(settings.database), read_only=True) as con:
        embedded = con.execute("SELECT count(embedding) FROM articles").fetchone()
        counted = con.execute("SELECT df FROM term_stats WHERE term = ''").fetchone()
    # Copies join by their text, and a stream in one language needs no embedding.
    assert embedded == (0,)
    assert counted == (150,)  # every loaded article counted in the statistics


def events(n: int) -> dict[str, int]:
    """The event each of the newsroom's articles reports (the truth), by article id."""
    from benchmarks.synthetic import Newsroom

    return {f.article(a.n, title=a.title, text=a.text, source=a.source)["id"]: a.event
            for a in Newsroom(5).articles(n)}


def newsroom(n: int) -> list[dict[str, Any]]:
    from benchmarks.synthetic import Newsroom

    out = []
    for a in Newsroom(5).articles(n):
        record = f.article(a.n, title=a.title, text=a.text, source=a.source,
                           countries=a.countries, people=a.people)
        record["published_at"] = a.published_at
        record["fetched_at"] = a.published_at + timedelta(minutes=5)
        out.append(record)
    return sorted(out, key=lambda r: (r["published_at"], r["id"]))


def partition(settings: Settings) -> dict[str, str]:
    with duckdb.connect(str(settings.database), read_only=True) as con:
        return dict(con.execute("SELECT id, story_id FROM articles").fetchall())


def test_one_batch_ten_at_a_time_and_one_at_a_time_load_the_same_stories(
        tmp_path: Path) -> None:
    articles = newsroom(20)
    results = []
    for size in (20, 10, 1):
        settings = f.settings(tmp_path / f"batches-of-{size}")
        for k, start in enumerate(range(0, len(articles), size)):
            run(settings, f"run-{k:03d}", articles[start:start + size])
        results.append(partition(settings))
    assert results[0] == results[1] == results[2]
    # Real choices: reports joined stories, and the stories are the newsroom's events.
    assert len(results[0]) == 20 and len(set(results[0].values())) < 20
    truth = events(20)
    story_of = {truth[r["id"]]: results[0][r["id"]] for r in articles}
    assert all(results[0][r["id"]] == story_of[truth[r["id"]]] for r in articles)
    assert len(story_of) == len(set(results[0].values()))


def test_an_article_bridging_two_stories_is_stored_as_a_link(tmp_path: Path) -> None:
    settings = f.settings(tmp_path)
    geneva = f.article(1, title="Syria constitutional committee talks open in Geneva",
                       text="Syrian constitutional committee talks opened in Geneva with the "
                       "envoy.", source="One", countries=("SY",))
    sochi = f.article(2, title="Russia, Turkey, Iran meet in Sochi on Idlib truce",
                      text="Russia, Turkey and Iran met in Sochi on the Idlib truce and its "
                      "observers.", source="Two", countries=("RU", "TR", "IR"), hours=1)
    bridge = f.article(3, title="Sochi summit backs Syria constitutional committee talks in "
                       "Geneva", text="Russia, Turkey and Iran in Sochi backed the Syrian "
                       "constitutional committee talks in Geneva and the Idlib truce.",
                       source="Three", hours=2)
    run(settings, "run-1", [geneva, sochi])
    before = partition(settings)
    run(settings, "run-2", [bridge])
    after = partition(settings)
    assert {k: after[k] for k in before} == before  # no id rewritten
    with duckdb.connect(str(settings.database), read_only=True) as con:
        links = con.execute("SELECT story_id, other_story_id, article_id FROM story_links"
                            ).fetchall()
    assert links == [(after[bridge["id"]],
                      ({before[geneva["id"]], before[sochi["id"]]} - {after[bridge["id"]]}).pop(),
                      bridge["id"])]


def test_a_database_from_before_the_story_tables_is_planned_read_only_then_loaded(
        tmp_path: Path) -> None:
    settings = f.settings(tmp_path, alerts=[RULE])
    run(settings, "run-1", copies(3))
    with duckdb.connect(str(settings.database)) as con:  # as an older newsmon left it
        con.execute("DROP TABLE term_stats")
        con.execute("DROP TABLE story_links")
        con.execute("ALTER TABLE articles DROP COLUMN embedding")
    f.stage(settings, "run-2", copies(2, start=3))
    with store.connect(settings.database, read_only=True) as con:
        assert plan(con, settings, "run-2").articles == 2
    with store.connect(settings.database) as con:
        load(con, settings, "run-2")
    assert counts(settings) == (5, 1, 1)
    with duckdb.connect(str(settings.database), read_only=True) as con:
        assert con.execute("SELECT df FROM term_stats WHERE term = ''").fetchone() == (2,)


def test_the_plan_reads_the_open_stories_not_the_archive(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = f.settings(tmp_path)
    old = [f.article(100 + i, title=f"Old story {i}", text=f"Archive report number {i} about "
                     f"harbour works in town {i}.", source="Old", hours=-24 * 40 + i)
           for i in range(30)]
    recent = copies(5)
    run(settings, "run-1", old)
    run(settings, "run-2", recent)
    f.stage(settings, "run-3", copies(3, start=5))
    caplog.set_level("INFO", logger="pipeline.store.plan")
    caplog.clear()  # only this plan's records (the loads above may have logged too)
    with store.connect(settings.database, read_only=True) as con:
        plan(con, settings, "run-3")
    clustered = [r for r in caplog.records if r.getMessage() == "clustered"]
    assert len(clustered) == 1
    # The open story, from its saved state (not its five stored copies); none of
    # the 30 archive stories.
    assert clustered[0].stories_restored == 1 and clustered[0].new == 3
    assert clustered[0].stored_read == 0


def test_a_story_saved_before_its_state_was_kept_is_rebuilt_once_then_restored(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = f.settings(tmp_path, alerts=[RULE])
    run(settings, "run-1", copies(5))
    with store.connect(settings.database) as con:  # as a database from before the tables
        con.execute("DELETE FROM story_state")
        con.execute("DELETE FROM story_signatures")
    caplog.set_level("INFO", logger="pipeline.store.plan")
    read = []
    for k, start in enumerate((5, 8), start=2):
        caplog.clear()
        run(settings, f"run-{k}", copies(3, start=start))
        (record,) = [r for r in caplog.records if r.getMessage() == "clustered"]
        read.append((record.stored_read, record.stories_restored))
    assert read == [(5, 0), (0, 1)]  # rebuilt from its articles once, then its saved state
    assert counts(settings) == (11, 1, 1)
    with duckdb.connect(str(settings.database), read_only=True) as con:
        state = con.execute("SELECT count(*), max(size) FROM story_state").fetchone()
        signatures = con.execute("SELECT count(*) FROM story_signatures").fetchone()
    assert state == (1, 11) and signatures == (11,)


SHOOTING = ("Man shot dead in Akron apartment",
            "A man was shot dead on Thursday in an apartment on Kimlyn Circle in Akron. Police "
            "identified him as Ronald Roberts, 24. Officers said Roberts was found in the "
            "basement by a friend.")
FOLLOW_UP = ("Suspect held without bail",
             "A 31-year-old suspect was held without bail in Akron on Monday, charged with "
             "murder over the death of Ronald Roberts, whose body a friend found in a basement "
             "on Kimlyn Circle two weeks ago.")


@pytest.mark.parametrize(("victim", "rare_reach", "read", "joins"), [
    (("Ronald Roberts", "Kimlyn Circle"), None, 1, True),
    (("Tyrell Mason", "Dayton Avenue"), None, 1, False),
    (("Ronald Roberts", "Kimlyn Circle"), 1.0, 0, False),
])
def test_a_follow_up_two_weeks_later_in_a_later_pass_joins_the_saved_story(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, victim: tuple[str, str],
        rare_reach: float | None, read: int, joins: bool) -> None:
    """A rare name shared keeps a story open three horizons (21 days): the
    plan of a pass two weeks later reads the saved story, and the follow-up
    naming its victim joins it; one about another victim starts its own.
    With ``cluster.rare_reach: 1`` the story closes after the horizon (7 days)
    for every report: the plan does not even read it."""
    cluster = {} if rare_reach is None else {"rare_reach": rare_reach}
    settings = f.settings(tmp_path, cluster=cluster)
    shooting = f.article(0, title=SHOOTING[0], text=SHOOTING[1], source="Beacon")
    run(settings, "run-1", [shooting])
    text = FOLLOW_UP[1].replace("Ronald Roberts", victim[0]).replace("Kimlyn Circle", victim[1])
    follow_up = f.article(1, title=FOLLOW_UP[0], text=text, source="Gazette", hours=24 * 14)
    caplog.set_level("INFO", logger="pipeline.store.plan")
    caplog.clear()
    run(settings, "run-2", [follow_up])
    (record,) = [r for r in caplog.records if r.getMessage() == "clustered"]
    assert record.stories_restored == read  # read: open to a report sharing a rare name
    with duckdb.connect(str(settings.database), read_only=True) as con:
        story = dict(con.execute("SELECT id, story_id FROM articles").fetchall())
    assert (story[follow_up["id"]] == story[shooting["id"]]) is joins


SEEDS = Path(__file__).resolve().parents[2] / "seeds" / "expected"
FRENCH = ("Israël et la Russie vont créer un groupe de travail sur le retrait des forces "
          "étrangères de Syrie",
          "Israël et la Russie ont convenu de mettre en place un groupe de travail conjoint, "
          "avec la participation d'autres pays, pour étudier le retrait de toutes les forces "
          "étrangères de Syrie, a déclaré le Premier ministre israélien Benjamin Netanyahu "
          "après sa rencontre avec le président russe Vladimir Poutine à Moscou. Selon une "
          "source gouvernementale israélienne, l'objectif est le départ des forces iraniennes "
          "du territoire syrien.")


def test_a_french_report_in_a_later_pass_joins_the_saved_english_story(tmp_path: Path) -> None:
    """The English story was never embedded (nothing in another language was
    open); the French report's plan reads its first report's text then, embeds
    it once and saves the story's embedding."""
    settings = f.settings(tmp_path)
    english = []
    for i, path in enumerate(sorted(SEEDS.glob("*.txt"))):
        text = path.read_text(encoding="utf-8")
        english.append(f.article(i, title=text.splitlines()[0][:120], text=text,
                                 source=f"Outlet {i}", countries=("IL", "RU", "SY"),
                                 people=("Benjamin Netanyahu", "Vladimir Putin"), hours=6 * i))
    run(settings, "run-1", english)
    with duckdb.connect(str(settings.database), read_only=True) as con:
        assert con.execute("SELECT count(*), count(embedding), max(founder_text) <> ''"
                           " FROM story_state").fetchone() == (1, 0, True)
    french = f.article(50, title=FRENCH[0], text=FRENCH[1], source="Le Monde", hours=30,
                       countries=("IL", "RU", "SY"), language="fr",
                       people=("Benjamin Netanyahu", "Vladimir Putin"))
    run(settings, "run-2", [french])
    assert counts(settings) == (6, 1, 0)
    with duckdb.connect(str(settings.database), read_only=True) as con:
        assert con.execute("SELECT size, embedding IS NOT NULL, embedded, founder_text"
                           " FROM story_state").fetchone() == (6, True, 2, "")


def test_unrelated_reports_loaded_into_a_new_database_do_not_chain(tmp_path: Path) -> None:
    # The statistics go through term_stats between loads: words of a language
    # the background lacks are common once the stored reports hold them often.
    settings = f.settings(tmp_path)
    records = []
    for n, doc in enumerate(made_up_reports(400)):
        record = f.article(n, title=doc.title, text=doc.text, source=doc.source)
        record["published_at"] = doc.time
        record["fetched_at"] = doc.time + timedelta(minutes=5)
        records.append(record)
    for k, start in enumerate(range(0, len(records), 25)):
        run(settings, f"run-{k:03d}", records[start:start + 25])
    sizes = sorted(Counter(partition(settings).values()).values(), reverse=True)
    assert sum(sizes) == 400 and sizes[0] <= 30, sizes[:5]
