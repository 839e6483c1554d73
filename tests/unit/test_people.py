# A dotless i (Turkish names) is the point of one test:
# ruff: noqa: RUF001
"""People tagging: full names, surnames, shared and weak surnames, transliterations.

Articles live in ``testdata/tagging/people_cases.yaml``; the seeds are the
repository's ``seeds/articles`` and ``seeds/expected``. Every negative test
has a positive twin.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

import pytest
import yaml

from pipeline.content.sentences import split_sentences
from pipeline.signal.people import (
    PersonSpec,
    PersonTag,
    Watchlist,
    WatchlistError,
    load_watchlist,
    tag_people,
    variants,
)

ROOT = Path(__file__).resolve().parents[2]
CASES = Path(__file__).parent / "testdata" / "tagging" / "people_cases.yaml"
SEED_FILES = sorted((ROOT / "seeds" / "articles").glob("*.txt")) + sorted(
    (ROOT / "seeds" / "expected").glob("*.txt")
)


@pytest.fixture(scope="module")
def watchlist() -> Watchlist:
    return load_watchlist()


@cache
def cases() -> dict[str, dict[str, str]]:
    data: dict[str, dict[str, str]] = yaml.safe_load(CASES.read_text("utf-8"))
    return data


def tag(name: str, watchlist: Watchlist) -> dict[str, PersonTag]:
    case = cases()[name]
    found = tag_people(title=case["title"], text=case["text"], watchlist=watchlist)
    return {t.name: t for t in found}


# --- the seeds ---------------------------------------------------------------


def test_the_seeds_are_there() -> None:
    assert len(SEED_FILES) == 10


@pytest.mark.parametrize("path", SEED_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_seeds_name_netanyahu_and_putin(path: Path, watchlist: Watchlist) -> None:
    text = path.read_text("utf-8")
    found = {t.name: t for t in tag_people(title="", text=text, watchlist=watchlist)}
    assert {"Benjamin Netanyahu", "Vladimir Putin"} <= set(found)
    for person in found.values():
        assert person.evidence in " ".join(text.split())


@pytest.mark.parametrize("stem", ["003_038213745faeba08", "004_9d3568ec65f61390"])
def test_seeds_003_and_004_name_assad(stem: str, watchlist: Watchlist) -> None:
    # 003: "Syrian President Bashar al-Assad", then "Assad's forces";
    # 004: "Syrian President Bashar Al Assad".
    for folder in ("articles", "expected"):
        text = (ROOT / "seeds" / folder / f"{stem}.txt").read_text("utf-8")
        found = {t.name: t for t in tag_people(title="", text=text, watchlist=watchlist)}
        assert "Bashar al-Assad" in found
        assert "Bashar" in found["Bashar al-Assad"].evidence


@pytest.mark.parametrize("path", SEED_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_sentences_given_by_the_caller_give_the_same_tags(path: Path, watchlist: Watchlist
                                                          ) -> None:
    # pipeline.signal.tag splits the body once and passes the spans to every tagger.
    text = path.read_text("utf-8")
    found = tag_people(title="Putin", text=text, watchlist=watchlist)
    assert found
    assert found == tag_people(title="Putin", text=text, watchlist=watchlist,
                               sentences=split_sentences(text))


def test_nobody_named_gives_no_tags(watchlist: Watchlist) -> None:
    assert tag_people(title="Markets", text="Shares rose.\nBonds fell.", watchlist=watchlist) == ()


def test_seed_003_counts_the_surname_too(watchlist: Watchlist) -> None:
    text = (ROOT / "seeds" / "expected" / "003_038213745faeba08.txt").read_text("utf-8")
    found = {t.name: t for t in tag_people(title="", text=text, watchlist=watchlist)}
    assert found["Bashar al-Assad"].mentions == 2


def test_seeds_without_assad_do_not_name_him(watchlist: Watchlist) -> None:
    text = (ROOT / "seeds" / "expected" / "000_64357cb52d7391a5.txt").read_text("utf-8")
    found = {t.name for t in tag_people(title="", text=text, watchlist=watchlist)}
    assert "Bashar al-Assad" not in found


# --- transliterations and other languages ----------------------------------------


def test_poutine_in_french(watchlist: Watchlist) -> None:
    assert set(tag("poutine_french", watchlist)) == {"Vladimir Putin"}


def test_putin_in_russian_genitive(watchlist: Watchlist) -> None:
    assert "Путин " not in cases()["putin_russian"]["text"]  # only "Путина"
    assert set(tag("putin_russian", watchlist)) == {"Vladimir Putin"}


def test_spellings_without_diacritics_and_without_al(watchlist: Watchlist) -> None:
    found = tag("transliterations", watchlist)
    assert set(found) == {"Bashar al-Assad", "Recep Tayyip Erdoğan"}
    assert found["Bashar al-Assad"].mentions == 2  # "Bashar Assad", "Assad's"


def test_variants() -> None:
    assert {"Bashar al Assad", "Bashar Assad"} <= set(variants("Bashar al-Assad"))
    assert "Assad" in variants("al-Assad", surname=True)
    assert "Erdogan" in variants("Erdoğan", surname=True)
    assert "Yildirim" in variants("Yıldırım", surname=True)
    assert variants("Зеленский", surname=True) == ["Зеленский"]  # й is not an accent


# --- surnames ------------------------------------------------------------------


def test_a_shared_surname_alone_is_not_tagged(watchlist: Watchlist) -> None:
    # "Sharif": Shehbaz Sharif and Nawaz Sharif are both on the watchlist
    assert tag("ambiguous_surname_alone", watchlist) == {}


def test_a_shared_surname_goes_to_the_person_named_in_full(watchlist: Watchlist) -> None:
    found = tag("ambiguous_surname_with_full_name", watchlist)
    assert set(found) == {"Shehbaz Sharif"}
    assert found["Shehbaz Sharif"].mentions == 2


def test_a_weak_surname_alone_is_not_tagged(watchlist: Watchlist) -> None:
    assert tag("weak_surname_alone", watchlist) == {}
    found = tag("weak_surname_with_full_name", watchlist)
    assert set(found) == {"Shinzo Abe"}
    assert found["Shinzo Abe"].mentions == 2


def test_a_surname_must_be_capitalised(watchlist: Watchlist) -> None:
    assert tag("lowercase_surname", watchlist) == {}
    found = tag_people(title="", text="Trump played his card.", watchlist=watchlist)
    assert [t.name for t in found] == ["Donald Trump"]


def test_not_people(watchlist: Watchlist) -> None:
    assert tag("xian_city", watchlist) == {}
    assert set(tag("xi_surname", watchlist)) == {"Xi Jinping"}


def test_shared_surname_goes_to_the_person_named_last_before_it(watchlist: Watchlist) -> None:
    text = (
        "Nawaz Sharif met his brother Shehbaz Sharif on Monday. Sharif said the party was united."
    )
    found = {t.name: t.mentions for t in tag_people(title="", text=text, watchlist=watchlist)}
    assert found == {"Nawaz Sharif": 1, "Shehbaz Sharif": 2}


def test_evidence_is_the_sentence_of_the_first_full_mention(watchlist: Watchlist) -> None:
    found = tag("evidence_first_full_mention", watchlist)
    assert found["Vladimir Putin"].evidence == (
        "Later, Vladimir Putin said the talks had been constructive."
    )
    assert found["Vladimir Putin"].mentions == 2


def test_a_title_mention_is_the_evidence(watchlist: Watchlist) -> None:
    found = tag_people(
        title="Macron to visit Beijing",
        text="Emmanuel Macron will travel next week.",
        watchlist=watchlist,
    )
    assert [(t.name, t.mentions) for t in found] == [("Emmanuel Macron", 2)]
    assert found[0].evidence == "Emmanuel Macron will travel next week."  # first *full* mention
    found = tag_people(title="Emmanuel Macron to visit Beijing", text="", watchlist=watchlist)
    assert found[0].evidence == "Emmanuel Macron to visit Beijing"


# --- the config can add people -----------------------------------------------------


def test_extra_people_from_the_config() -> None:
    watchlist = load_watchlist(extra=[PersonSpec(name="Jane Doe", aliases=("J. Doe",))])
    found = tag_people(title="", text="Doe said the plan would work.", watchlist=watchlist)
    assert [t.name for t in found] == ["Jane Doe"]
    # the default watchlist is still there, and unchanged by the extra person
    assert "Vladimir Putin" in {p.name for p in watchlist.people}
    assert "Jane Doe" not in {p.name for p in load_watchlist().people}


def test_an_extra_person_with_a_known_surname_makes_it_shared() -> None:
    watchlist = load_watchlist(extra=[PersonSpec(name="Anna Netanyahu")])
    text = "Netanyahu said on Monday that the talks would go on."
    assert tag_people(title="", text=text, watchlist=watchlist) == ()
    assert tag_people(title="", text=text, watchlist=load_watchlist()) != ()


def test_an_extra_alias_for_a_known_person_is_merged() -> None:
    watchlist = load_watchlist(extra=[PersonSpec(name="vladimir putin", aliases=("VVP",))])
    assert sum(p.name == "Vladimir Putin" for p in watchlist.people) == 1
    found = tag_people(title="", text="VVP spoke on Monday.", watchlist=watchlist)
    assert [t.name for t in found] == ["Vladimir Putin"]


def test_load_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("people:\n  - {name: Jane Doe, aliases: [Jane Q. Doe]}\n", "utf-8")
    found = tag_people(title="", text="Jane Q. Doe spoke.", watchlist=load_watchlist(path))
    assert [(t.name, t.mentions) for t in found] == [("Jane Doe", 1)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("people: {}\n", r"w\.yaml: line 1: people: must be a list, not a mapping"),
        ("people:\n  - {aliases: [X]}\n", r"line 2: people\[0\]: needs a 'name'"),
        ("people:\n  - {name: X, alias: [Y]}\n", r"line 2: people\[0\] \(X\)\.alias: unknown key"),
        ("people:\n  - {name: X, aliases: Y}\n",
         r"line 2: people\[0\] \(X\)\.aliases: must be a list, not 'Y'"),
        ("people:\n  - {name: X, aliases: ['']}\n",
         r"line 2: people\[0\] \(X\)\.aliases\[0\]: must be a non-empty string"),
        ("people:\n  - {name: X}\nnot_people: [Y, 2]\n",
         r"line 3: not_people\[1\]: must be a string, not 2"),
    ],
)
def test_malformed_watchlist(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(body, "utf-8")
    with pytest.raises(WatchlistError, match=message):
        load_watchlist(path)


def test_an_extra_person_needs_a_name() -> None:
    with pytest.raises(WatchlistError, match="empty name"):
        load_watchlist(extra=[PersonSpec(name=" ")])


# --- the data ------------------------------------------------------------------


def shipped_people() -> list[dict[str, object]]:
    raw = resources.files("pipeline").joinpath("data/people.yaml").read_text("utf-8")
    people: list[dict[str, object]] = yaml.safe_load(raw)["people"]
    return people


def test_every_person_has_a_unique_name() -> None:
    names = [p.get("name") for p in shipped_people()]
    assert all(isinstance(n, str) and n.strip() for n in names)
    assert len(names) == len(set(names))
    assert 80 <= len(names) <= 200


def test_no_full_name_or_alias_belongs_to_two_people() -> None:
    owners: dict[str, set[str]] = {}
    for person in shipped_people():
        name = person["name"]
        aliases = person.get("aliases", [])
        assert isinstance(name, str) and isinstance(aliases, list)
        for form in (name, *aliases):
            owners.setdefault(form.lower(), set()).add(name)
    assert {form: who for form, who in owners.items() if len(who) > 1} == {}


def test_countries_are_iso_codes() -> None:
    # quoted in the file: unquoted, YAML reads Norway's NO as false
    assert all(
        isinstance(p.get("country"), str) and len(str(p["country"])) == 2 for p in shipped_people()
    )


def test_a_missing_watchlist_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(WatchlistError, match=r"nope\.yaml: cannot read the watchlist: No such"):
        load_watchlist(tmp_path / "nope.yaml")
