"""The cleaner's faster code paths decide exactly as the plain definitions they replace.

Each test holds the plain definition (the code before the speed-up) and
compares on constructed input: the glue regex, ``is_prose``'s first letter
and the line-rule loop (``_apply_line_rules`` against ``Rule.matches``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.content import clean as clean_module
from pipeline.content.clean import (
    PROSE_LOWER_SHARE,
    PROSE_MIN_LOWER,
    PROSE_MIN_WORDS,
    PROSE_UNPUNCTUATED_WORDS,
    Rule,
    clean,
    is_prose,
    load_rules,
    parse_rules,
)

TESTDATA = Path(__file__).parent / "testdata" / "clean"

# The glue as it was written: an empty match between the two texts.
PLAIN_GLUE = re.compile(r"(?<=[A-Za-z\d)\]])(?=[A-Z][a-z])")
_LETTERS = re.compile(r"[\W\d_]+")

# Letters, digits (also Arabic-Indic), brackets, capitals outside A-Z, Cyrillic,
# spaces and punctuation: what the glue and the first letter of a word turn on.
GLUE_CHARS = "aAzZbQ09٣)](_ .,'\"«ÉéЖж\n²-"


def _plain_is_prose(line: str) -> bool:
    words = line.split()
    ends = line.rstrip("\"'\u201d\u2019\u00bb)]*")[-1:] in set(".!?…")
    if len(words) < (PROSE_MIN_WORDS if ends else PROSE_UNPUNCTUATED_WORDS):
        return False
    lower = 0
    for word in words:
        letters = _LETTERS.sub("", word)
        if letters and not letters[0].isupper():
            lower += 1
    return lower >= PROSE_MIN_LOWER and lower >= PROSE_LOWER_SHARE * len(words)


@settings(max_examples=3000)
@given(st.text(alphabet=GLUE_CHARS, max_size=40))
def test_the_glue_is_found_where_the_plain_regex_finds_it(text: str) -> None:
    found = [m.start() for m in clean_module._GLUE.finditer(text)]
    assert found == [m.start() for m in PLAIN_GLUE.finditer(text)]


def test_the_glue_examples() -> None:
    def places(text: str) -> list[int]:
        return [m.start() for m in clean_module._GLUE.finditer(text)]

    assert places("© ReutersThe bridge") == [9]
    assert places("2019The year") == [4]
    assert places("(AFP)The bridge") == [5]
    assert places("The bridge") == []  # at the start: nothing before it
    assert places("USAThe") == [3]  # a capital before it is glue too ("AFPThe")
    assert places("McDonald and YouTube") == [2, 16]
    assert places("éThe") == []  # a letter outside A-Z before it is no glue


WORDS = st.lists(
    st.text(alphabet="aZ«(\"'²_9٣Жж-.…!?:", min_size=1, max_size=6), min_size=0, max_size=24)


@settings(max_examples=3000)
@given(WORDS, st.sampled_from(["", ".", "?", ".\u201d", ")"]))
def test_is_prose_counts_first_letters_as_before(words: list[str], end: str) -> None:
    line = " ".join(words) + end
    assert is_prose(line) == _plain_is_prose(line)


def test_is_prose_first_letter_behind_punctuation_and_digits() -> None:
    # the first letter after an opening quote, a digit or an underscore decides
    assert is_prose("«the (first _word 2nd ²nd try came out as planned.")
    assert not is_prose("«The (First _Word 2Nd ²Nd Try Came Out As Planned.")


def _plain_verdicts(rules: tuple[Rule, ...], lines: list[str], head: frozenset[int]
                    ) -> dict[int, str]:
    """The loop before the speed-up: the first in-scope rule whose matches() holds."""
    found = {}
    for i, line in enumerate(lines):
        if not line:
            continue
        words = len(line.split())
        in_scope = (r for r in rules if r.where == "any" or i in head)
        rule = next((r for r in in_scope if r.matches(line, words)), None)
        if rule is not None:
            found[i] = rule.name
    return found


def _with_min_run(rules: Sequence[Rule], nonblank: Sequence[int],
                  plain: dict[int, str]) -> dict[int, str]:
    """The plain verdicts after min_run: a run of consecutive non-blank lines
    matched by one rule stays only when it is at least that rule's min_run long."""
    min_run = {r.name: r.min_run for r in rules}
    kept: dict[int, str] = {}
    run: list[int] = []
    for i in [*nonblank, -1]:
        if run and plain.get(i) != plain[run[0]]:
            if len(run) >= min_run[plain[run[0]]]:
                kept.update(dict.fromkeys(run, plain[run[0]]))
            run = []
        if i in plain:
            run.append(i)
    return kept


RULES = parse_rules({
    "generic": [
        {"name": "short_read_more", "group": "related", "regex": "^read more", "max_words": 4},
        {"name": "read_more", "group": "related", "regex": "^read more"},
        {"name": "head_only", "group": "header", "regex": "^by ", "where": "head"},
        {"name": "proof", "group": "caption", "regex": "photo:", "on_prose": "remove"},
        {"name": "guarded", "group": "caption", "regex": "credit"},
        {"name": "exact", "group": "widget", "lines": ["Share this", "Print"]},
        {"name": "exact_short", "group": "widget", "lines": ["Tweet now", "Tweet"],
         "max_words": 1},
    ],
})
LINE_TEXTS = [
    "Read more", "Read more about the many things that were said today here",
    "By Jane Doe", "Photo: the minister and the people who came with him to the meeting.",
    "Photo credit", "The credit was given to the people who had waited for it all year.",
    "Share this", "share this:", "Print", "Tweet", "Tweet now", "",
    "A plain sentence of the article.",
]


@settings(max_examples=500)
@given(st.lists(st.sampled_from(LINE_TEXTS), max_size=15),
       st.frozensets(st.integers(0, 14), max_size=10))
def test_line_rules_decide_as_rule_matches(lines: list[str], head: frozenset[int]) -> None:
    verdicts: dict[int, Rule] = {}
    nonblank = [i for i, line in enumerate(lines) if line]
    clean_module._apply_line_rules(RULES.generic, nonblank, lines, head, verdicts)
    assert {i: r.name for i, r in verdicts.items()} == _plain_verdicts(RULES.generic, lines, head)


def test_line_rules_decide_as_rule_matches_on_the_golden_texts() -> None:
    rules = load_rules().for_page("https://example.org/a", None)
    checked = 0
    for path in sorted(TESTDATA.glob("*.txt")):
        lines = [" ".join(line.split()) for line in path.read_text("utf-8").split("\n")]
        head = frozenset(range(10))
        verdicts: dict[int, Rule] = {}
        nonblank = [i for i, line in enumerate(lines) if line]
        clean_module._apply_line_rules(rules, nonblank, lines, head, verdicts)
        plain = _with_min_run(rules, nonblank, _plain_verdicts(rules, lines, head))
        assert {i: r.name for i, r in verdicts.items()} == plain
        checked += len(plain)
    assert checked >= 20


def test_an_exact_rule_keeps_its_word_limit() -> None:
    cleaned = clean("Tweet now\nShare this\nTweet\nThe article's only sentence, long enough.",
                    title=None, url="https://example.org/a", site_name=None, rules=RULES)
    assert [(r.line, r.rule) for r in cleaned.removed] == [
        ("Share this", "exact"), ("Tweet", "exact_short")]
