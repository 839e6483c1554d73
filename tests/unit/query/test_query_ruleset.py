"""RuleSet: the names of the rules that match, looking only at rules that can match.

(That it equals evaluating every rule is checked on random rules in
test_query_properties.py.)
"""

from __future__ import annotations

import pytest

from pipeline.query import Document, RuleSet, _ruleset, parse

RULES = {
    "syria": "country:SY OR title:(Syria OR Syrian* OR Damascus)",
    "forces": '"foreign forces" OR (withdraw* NEAR/3 troops)',
    "damascus-talks": "a AND damascus",
    "english": "lang:en",
    "not-sport": "lang:fr NOT sport",
    "short-prefix": "zz*",
    "person": "person:putin",
    "war-topics": "topic:war*",
    "near-or": "(withdrawal OR pullout OR \"pull out\") NEAR/2 contingent",
}


def ruleset() -> RuleSet:
    return RuleSet({name: parse(q) for name, q in RULES.items()})


def test_match_returns_the_names_of_the_matching_rules() -> None:
    rules = ruleset()
    doc = Document(title="Syrians in Damascus", text="a foreign forces", language="en")
    assert rules.match(doc) == {"syria", "forces", "damascus-talks", "english"}
    assert rules.match(Document(text="troops withdrawing", language="fr")) == {
        "forces", "not-sport"
    }
    assert rules.match(Document(text="zzz", people=["Vladimir Putin"])) == {
        "short-prefix", "person"
    }
    assert rules.match(Document(countries=["sy"])) == {"syria"}
    assert rules.match(Document(text="sport", language="fr")) == set()
    assert rules.match(Document(topics=["Warfare"])) == {"war-topics"}
    # Every alternative of a NEAR operand is anchored, not only the first.
    texts = ("withdrawal of the contingent", "the contingent, pullout", "pull out a contingent")
    for text in texts:
        assert rules.match(Document(text=text)) == {"near-or"}, text


def names(rules: RuleSet, indexes: set[int]) -> set[str]:
    return {rules.names[i] for i in indexes}


def test_rules_without_any_of_their_anchor_words_are_not_evaluated() -> None:
    rules = ruleset()
    # Only a rule without anchors (a tag prefix) is looked at for every document.
    assert names(rules, rules.candidates(Document(text="nothing relevant"))) == {"war-topics"}
    always = {"war-topics"}
    # Tags are anchors too.
    assert names(rules, rules.candidates(Document(language="en"))) == always | {"english"}
    assert names(rules, rules.candidates(Document(countries=["SY"]))) == always | {"syria"}
    # An AND needs a hit in its two best groups: "damascus" alone or "a" alone is not enough.
    assert "damascus-talks" not in names(rules, rules.candidates(Document(text="damascus")))
    assert "damascus-talks" not in names(rules, rules.candidates(Document(text="a")))
    assert "damascus-talks" in names(rules, rules.candidates(Document(title="a", text="damascus")))
    # An OR is anchored on one word of each branch; -s/-es forms count.
    assert "forces" in names(rules, rules.candidates(Document(text="foreigns")))
    assert "forces" in names(rules, rules.candidates(Document(text="troops")))
    assert "forces" not in names(rules, rules.candidates(Document(text="forces withdrawal")))
    # Prefixes are looked up by their first letters, in every field.
    assert "short-prefix" in names(rules, rules.candidates(Document(title="ZZtop")))
    assert "person" in names(rules, rules.candidates(Document(people=["V. Putin"])))


def test_each_rule_keeps_its_compiled_matcher_for_hits() -> None:
    rules = ruleset()
    assert len(rules) == len(RULES)
    assert rules.names == tuple(RULES)
    doc = Document(title="In Damascus")
    assert [(h.field, h.start, h.end) for h in rules.matcher("syria").hits(doc)] == [
        ("title", 3, 11)
    ]


def test_a_stem_is_anchored_in_full_not_by_its_first_letters() -> None:
    rules = RuleSet({"syrian": parse("syrian*"), "syr": parse('"syr* talks"')})
    assert names(rules, rules.candidates(Document(text="Syriac church"))) == set()
    assert names(rules, rules.candidates(Document(text="Syrians"))) == {"syrian"}
    assert names(rules, rules.candidates(Document(title="syriac talks"))) == {"syr"}
    assert rules.match(Document(title="syriac talks", text="syrian")) == {"syr", "syrian"}


def test_the_remembered_words_start_afresh_without_losing_a_match(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Words (and the rules of each) are remembered across documents, up to
    # MEMO_WORDS; then the memory starts again, in the middle of a document too.
    monkeypatch.setattr(_ruleset, "MEMO_WORDS", 3)
    rules = ruleset()
    texts = ["troops withdrawing zzz", "a foreign forces", "zz top withdrew troops",
             "pull out a contingent", "troops withdrawing zzz", "zzz"]
    for text in texts:
        doc = Document(title="Damascus", text=text, language="fr")
        expected = {name for name in rules.names if rules.matcher(name).matches(doc)}
        assert rules.match(doc) == expected, text
        assert expected <= names(rules, rules.candidates(doc)), text
