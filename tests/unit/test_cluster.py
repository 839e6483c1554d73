from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipeline.cluster import ClusterDoc, cluster

SEEDS = Path(__file__).resolve().parents[2] / "seeds" / "expected"
T0 = datetime(2019, 2, 27, tzinfo=UTC)


def seed_docs() -> list[ClusterDoc]:
    docs = []
    for i, path in enumerate(sorted(SEEDS.glob("*.txt"))):
        text = path.read_text(encoding="utf-8")
        first = text.splitlines()[0]
        docs.append(ClusterDoc(
            id=path.stem, time=T0 + timedelta(hours=12 * i), title=first[:120], text=text,
            source=f"outlet-{i}", countries=("IL", "RU", "SY"),
            people=("Benjamin Netanyahu", "Vladimir Putin"),
        ))
    return docs


OTHER_SYRIA = ClusterDoc(
    id="idlib", time=T0 + timedelta(hours=30), source="other",
    title="Syrian army shells rebel-held Idlib as ceasefire falters",
    text="Syrian government forces shelled rebel positions in Idlib province on Saturday, "
    "killing at least 12 civilians, according to the Syrian Observatory for Human Rights. "
    "The attacks came despite a ceasefire brokered by Russia and Turkey in September. "
    "Turkish troops manning observation posts in the province were not harmed.",
    countries=("SY", "TR"),
)


def test_five_reports_of_one_event_form_one_story() -> None:
    assignments, _ = cluster(seed_docs(), [])
    assert len(assignments) == 5
    assert len(set(assignments.values())) == 1


def test_a_different_syria_event_in_the_same_week_stays_apart() -> None:
    assignments, _ = cluster([*seed_docs(), OTHER_SYRIA], [])
    assert assignments["idlib"] not in {v for k, v in assignments.items() if k != "idlib"}


def test_new_article_joins_a_stored_story_within_the_window_only() -> None:
    docs = seed_docs()
    stored = [ClusterDoc(**{**_fields(d), "story_id": "s-old"}) for d in docs[:4]]
    late = docs[4]
    joined, _ = cluster([late], stored)
    assert joined[late.id] == "s-old"
    much_later = ClusterDoc(**{**_fields(late), "time": late.time + timedelta(days=10)})
    apart, _ = cluster([much_later], stored)
    assert apart[late.id] != "s-old"


def test_story_ids_are_stable_across_runs() -> None:
    first, _ = cluster(seed_docs(), [])
    second, _ = cluster(list(reversed(seed_docs())), [])
    assert first == second


def _fields(doc: ClusterDoc) -> dict[str, object]:
    return {name: getattr(doc, name) for name in doc.__slots__}
