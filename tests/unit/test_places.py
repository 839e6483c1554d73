"""Country tagging: the "substantially about" rule, matching, and the gazetteer data.

Articles live in ``testdata/tagging/places_cases.yaml``; the seeds are the
repository's ``seeds/articles`` (as extracted) and ``seeds/expected`` (as
cleaned). Every negative test has a positive twin, so it cannot pass merely
because nothing is ever tagged.
"""

from __future__ import annotations

from collections import defaultdict
from functools import cache
from importlib import resources
from pathlib import Path

import pytest
import yaml

from pipeline.content.sentences import split_sentences
from pipeline.signal.places import (
    CountryTag,
    Gazetteer,
    GazetteerError,
    expand_form,
    load_gazetteer,
    tag_countries,
)

ROOT = Path(__file__).resolve().parents[2]
CASES = Path(__file__).parent / "testdata" / "tagging" / "places_cases.yaml"
SEED_FILES = sorted((ROOT / "seeds" / "articles").glob("*.txt")) + sorted(
    (ROOT / "seeds" / "expected").glob("*.txt")
)

# ISO 3166-1 alpha-2, all 249 officially assigned codes (ISO 3166 Maintenance
# Agency list; XK for Kosovo is user-assigned and not among them).
ISO_ALPHA2 = frozenset(
    str.split(
        """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ
    BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR
    CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR
    GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU
    ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ
    LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
    MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF
    PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI
    SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR
    TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
    """
    )
)


@pytest.fixture(scope="module")
def gazetteer() -> Gazetteer:
    return load_gazetteer()


@cache
def cases() -> dict[str, dict[str, str]]:
    data: dict[str, dict[str, str]] = yaml.safe_load(CASES.read_text("utf-8"))
    return data


def tag(name: str, gazetteer: Gazetteer) -> dict[str, CountryTag]:
    case = cases()[name]
    tags = tag_countries(title=case["title"], text=case["text"], gazetteer=gazetteer)
    return {t.code: t for t in tags}


def codes(name: str, gazetteer: Gazetteer) -> set[str]:
    return set(tag(name, gazetteer))


# --- the seeds ---------------------------------------------------------------


def test_the_seeds_are_there() -> None:
    assert len(SEED_FILES) == 10


@pytest.mark.parametrize("path", SEED_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_seeds_are_about_syria_israel_russia_and_iran(path: Path, gazetteer: Gazetteer) -> None:
    # Iran is tagged in all five: every seed names it (Iran, Iranian, Tehran)
    # in at least two sentences, as a party to the story (Israel's demand that
    # Iranian forces leave Syria), not in passing.
    text = path.read_text("utf-8")
    found = {t.code: t for t in tag_countries(title="", text=text, gazetteer=gazetteer)}
    assert {"SY", "IL", "RU", "IR"} <= set(found)
    for code in ("SY", "IL", "RU", "IR"):
        assert found[code].mentions >= 2
        assert found[code].evidence in " ".join(text.split())


@pytest.mark.parametrize("path", SEED_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_seeds_passing_mentions_are_not_tagged(path: Path, gazetteer: Gazetteer) -> None:
    # 002: "neighboring Lebanon and Syria"; 003: "Lebanon-based", one sentence
    # with "The White House ... the United States", one with "Turkey";
    # 004: "in Paris on the sidelines". None of them is what the story is about.
    text = path.read_text("utf-8")
    found = {t.code for t in tag_countries(title="", text=text, gazetteer=gazetteer)}
    assert found.isdisjoint({"LB", "US", "TR", "FR"})


@pytest.mark.parametrize("path", SEED_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_sentences_given_by_the_caller_give_the_same_tags(path: Path, gazetteer: Gazetteer
                                                          ) -> None:
    # pipeline.signal.tag splits the body once and passes the spans to every tagger.
    text = path.read_text("utf-8")
    found = tag_countries(title="Syria", text=text, gazetteer=gazetteer)
    assert found
    assert found == tag_countries(title="Syria", text=text, gazetteer=gazetteer,
                                  sentences=split_sentences(text))


def test_seed_mentions_in_the_dateline_and_credit_do_not_count(gazetteer: Gazetteer) -> None:
    raw = (ROOT / "seeds" / "articles" / "002_8d3c3d73544a7484.txt").read_text("utf-8")
    body_only = raw.replace("TEL AVIV (Sputnik) - ", "")
    with_dateline = {t.code: t for t in tag_countries(title="", text=raw, gazetteer=gazetteer)}
    without = {t.code: t for t in tag_countries(title="", text=body_only, gazetteer=gazetteer)}
    assert with_dateline["IL"].mentions == without["IL"].mentions


# --- languages, demonyms, capitals -----------------------------------------------


@pytest.mark.parametrize("name", ["french_syria", "russian_syria", "german_syria", "spanish_syria"])
def test_names_in_other_languages(name: str, gazetteer: Gazetteer) -> None:
    found = tag(name, gazetteer)
    assert "SY" in found
    assert found["SY"].mentions >= 2


def test_french_capital_alone_is_enough_in_the_lead(gazetteer: Gazetteer) -> None:
    assert codes("french_damas_only", gazetteer) == {"SY"}


def test_russian_inflected_forms(gazetteer: Gazetteer) -> None:
    found = tag("russian_syria", gazetteer)
    # "Сирии" twice (genitive): the nominative "Сирия" is not in the text
    assert "Сирия" not in cases()["russian_syria"]["text"]
    assert found["SY"].mentions == 2


def test_demonym_and_capital(gazetteer: Gazetteer) -> None:
    found = tag("demonym_and_capital", gazetteer)
    assert set(found) == {"SY"}
    assert found["SY"].mentions == 2  # "Damascus", "Syrian"


# --- datelines, credits, passing mentions ----------------------------------------


@pytest.mark.parametrize(
    "name", ["dateline_tel_aviv", "dateline_moscow_reuters", "dateline_damascus_dash"]
)
def test_a_dateline_alone_does_not_tag(name: str, gazetteer: Gazetteer) -> None:
    assert codes(name, gazetteer) == set()


def test_the_same_place_in_the_lead_does_tag(gazetteer: Gazetteer) -> None:
    assert codes("not_a_dateline_tel_aviv", gazetteer) == {"IL"}


def test_photo_credits_do_not_tag(gazetteer: Gazetteer) -> None:
    assert codes("photo_credit", gazetteer) == set()


def test_one_passing_mention_does_not_tag(gazetteer: Gazetteer) -> None:
    assert codes("passing_mention", gazetteer) == set()


def test_mentions_in_two_sentences_do_tag(gazetteer: Gazetteer) -> None:
    found = tag("two_sentence_mentions", gazetteer)
    assert set(found) == {"FR"}
    assert found["FR"].mentions == 2


def test_two_mentions_in_one_sentence_are_one_passing_mention(gazetteer: Gazetteer) -> None:
    assert codes("one_sentence_two_mentions", gazetteer) == set()


def test_long_articles_need_more_sentences(gazetteer: Gazetteer) -> None:
    filler = "The committee met again on Tuesday and discussed the budget in detail. " * 120
    two = "Officials travelled to Paris for the talks. " * 2
    four = "Officials travelled to Paris for the talks. " * 4
    text = "Budget talks drag on for another week.\n" + filler

    def found(body: str) -> set[str]:
        return {t.code for t in tag_countries(title="", text=body, gazetteer=gazetteer)}

    assert "FR" not in found(text + two)
    assert "FR" in found(text + four)


def test_a_title_mention_tags_and_is_the_evidence(gazetteer: Gazetteer) -> None:
    found = tag_countries(
        title="Japan and Korea agree on a hotline",
        text="The two countries agreed on Monday to set up a military hotline.",
        gazetteer=gazetteer,
    )
    assert [t.code for t in found] == ["JP"]  # "Korea" alone is ambiguous, unsupported
    assert found[0].evidence == "Japan and Korea agree on a hotline"


# --- ambiguity -------------------------------------------------------------------


def test_south_sudan_is_not_sudan(gazetteer: Gazetteer) -> None:
    found = tag("south_sudan", gazetteer)
    assert set(found) == {"SS"}
    assert found["SS"].mentions >= 4  # title (Juba) + "South Sudan('s)" + "South Sudanese"
    assert codes("sudan", gazetteer) == {"SD"}


def test_georgia_the_us_state_is_not_the_country(gazetteer: Gazetteer) -> None:
    assert "GE" not in codes("georgia_us_politics", gazetteer)
    assert "GE" in codes("georgia_country", gazetteer)  # supported by "Tbilisi"


def test_jordan_the_first_name_is_not_the_country(gazetteer: Gazetteer) -> None:
    assert "JO" not in codes("jordan_first_name", gazetteer)
    assert "JO" in codes("jordan_country", gazetteer)  # supported by "Amman"


def test_turkey_the_food_is_not_the_country(gazetteer: Gazetteer) -> None:
    assert "TR" not in codes("turkey_food", gazetteer)
    assert "TR" in codes("turkey_country", gazetteer)


def test_the_pronoun_us_is_not_the_united_states(gazetteer: Gazetteer) -> None:
    assert codes("us_pronoun", gazetteer) == set()
    found = tag_countries(title="US and UK sign deal", text="", gazetteer=gazetteer)
    assert {t.code for t in found} == {"US", "GB"}


def test_longest_name_wins(gazetteer: Gazetteer) -> None:
    text = (
        "The Democratic Republic of the Congo accused Rwanda of backing the rebels. "
        "Kinshasa said the Democratic Republic of the Congo would not negotiate."
    )
    found = {t.code for t in tag_countries(title="", text=text, gazetteer=gazetteer)}
    assert "CD" in found
    assert "CG" not in found  # "Republic of the Congo" inside the longer name
    nk = tag_countries(
        title="North Korea fires missile", text="Pyongyang fired a missile.", gazetteer=gazetteer
    )
    assert [t.code for t in nk] == ["KP"]


def test_not_places_count_for_nothing(gazetteer: Gazetteer) -> None:
    text = (
        "The minister told the Jerusalem Post that the budget would pass. "
        "He repeated it to the Jerusalem Post on Sunday."
    )
    assert tag_countries(title="", text=text, gazetteer=gazetteer) == ()
    assert tag_countries(title="", text=text.replace(" Post", ""), gazetteer=gazetteer) != ()


def test_result_is_deterministic_and_ordered(gazetteer: Gazetteer) -> None:
    text = (ROOT / "seeds" / "articles" / "004_9d3568ec65f61390.txt").read_text("utf-8")
    first = tag_countries(title="Russia and Israel agree", text=text, gazetteer=gazetteer)
    assert first == tag_countries(title="Russia and Israel agree", text=text, gazetteer=gazetteer)
    assert [t.code for t in first[:2]] == ["RU", "IL"]  # named in the title come first


# --- loading -------------------------------------------------------------------


def test_default_gazetteer_is_cached() -> None:
    assert load_gazetteer() is load_gazetteer()


def test_load_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text(
        'countries:\n  "XA":\n    name: Atlantis\n    demonyms: ["Atlantean+"]\n', "utf-8"
    )
    g = load_gazetteer(path)
    found = tag_countries(title="Atlanteans vote", text="", gazetteer=g)
    assert [(t.code, t.mentions) for t in found] == [("XA", 1)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("countries: []\n", r"g\.yaml: line 1: countries: must be a mapping, not a list"),
        ('countries:\n  "xa": {name: X}\n', r"line 2: countries\.xa: 'xa' .*two capital letters"),
        # YAML reads NO as false
        ("countries:\n  NO: {name: Norway}\n", r"countries\.False: False .*two capital letters"),
        ('countries:\n  "XA": {names: [X]}\n', r"line 2: countries\.XA: needs a 'name'"),
        ('countries:\n  "XA": {name: X, capitol: Y}\n',
         r"line 2: countries\.XA\.capitol: unknown key"),
        ('countries:\n  "XA": {name: X, names: [1]}\n',
         r"line 2: countries\.XA\.names\[0\]: must be a string, not 1"),
        ('countries:\n  "XA": {name: X, names: [""]}\n',
         r"countries\.XA\.names\[0\]: must be a non-empty string"),
        ("- a\n", "expected a mapping of keys at the top level, not a list"),
        ("countries: {XA: {name: X}}\ncountries: {}\n", "line 2: countries: repeated key"),
    ],
)
def test_malformed_gazetteer(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "g.yaml"
    path.write_text(body, "utf-8")
    with pytest.raises(GazetteerError, match=message):
        load_gazetteer(path)


# --- the data ------------------------------------------------------------------


def shipped() -> dict[str, object]:
    raw = resources.files("pipeline").joinpath("data/countries.yaml").read_text("utf-8")
    data: dict[str, object] = yaml.safe_load(raw)
    return data


def test_every_iso_code_is_there_and_nothing_else() -> None:
    countries = shipped()["countries"]
    assert isinstance(countries, dict)
    assert set(countries) == ISO_ALPHA2
    assert all(isinstance(entry["name"], str) and entry["name"] for entry in countries.values())


def test_no_unambiguous_form_points_at_two_countries() -> None:
    countries = shipped()["countries"]
    assert isinstance(countries, dict)
    owners: dict[str, set[str]] = defaultdict(set)
    ambiguous_somewhere: set[str] = set()
    for code, entry in countries.items():
        flagged = set(entry.get("ambiguous", []))
        for key in ("name", "names", "demonyms", "capital", "places", "fr", "de", "es", "ru"):
            value = entry.get(key) or []
            lang = key if key in ("fr", "de", "es", "ru") else "en"
            for written in [value] if isinstance(value, str) else value:
                for form in expand_form(written, lang):
                    owners[form.lower()].add(code)
                    if written in flagged:
                        ambiguous_somewhere.add(form.lower())
    clashes = {
        form: sorted(codes)
        for form, codes in owners.items()
        if len(codes) > 1 and form not in ambiguous_somewhere
    }
    assert clashes == {}


def test_ambiguous_flags_name_real_forms() -> None:
    countries = shipped()["countries"]
    assert isinstance(countries, dict)
    for code, entry in countries.items():
        written: set[str] = set()
        for key in ("name", "names", "demonyms", "capital", "places", "fr", "de", "es", "ru"):
            value = entry.get(key) or []
            written.update([value] if isinstance(value, str) else value)
        assert set(entry.get("ambiguous", [])) <= written, code


@pytest.mark.parametrize(
    ("written", "lang", "expected"),
    [
        ("Сирия", "ru", {"Сирия", "Сирии", "Сирию", "Сирией"}),
        ("Южная Корея", "ru", {"Южной Кореи", "Южную Корею"}),
        ("Соединенные Штаты", "ru", {"Соединенных Штатов", "Соединенным Штатам"}),
        ("сирийский+", "ru", {"сирийская", "сирийских", "сирийскими"}),
        ("Перу", "ru", {"Перу"}),
        ("syrisch+", "de", {"syrische", "syrischen"}),
        ("Syrien", "de", {"Syriens"}),
        ("syrien+", "fr", {"syrienne", "syriens"}),
        ("francés+", "es", {"francesa", "franceses"}),
        ("Syrian+", "en", {"Syrians"}),
    ],
)
def test_inflection_rules(written: str, lang: str, expected: set[str]) -> None:
    assert expected <= set(expand_form(written, lang))


def test_a_missing_gazetteer_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(GazetteerError, match=r"nope\.yaml: cannot read the gazetteer: No such"):
        load_gazetteer(tmp_path / "nope.yaml")
