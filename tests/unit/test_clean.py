"""The clean stage against golden files, Miniflux-style.

``testdata/clean/<name>.txt`` is the extracted text, ``<name>.txt-result`` the
text the cleaner must give back, and the optional ``<name>.json`` gives the
page's title, URL and site name (all None/"" when absent).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.content.clean import (
    GENERIC_RELATED_LABELS,
    RuleError,
    clean,
    is_prose,
    is_related_label,
    load_rules,
    parse_rules,
)

TESTDATA = Path(__file__).parent / "testdata" / "clean"
SEEDS = Path(__file__).resolve().parents[2] / "seeds"
CASES = sorted(p.stem for p in TESTDATA.glob("*.txt"))


def run_case(name: str) -> tuple[str, str]:
    meta_file = TESTDATA / f"{name}.json"
    meta = json.loads(meta_file.read_text("utf-8")) if meta_file.exists() else {}
    cleaned = clean(
        (TESTDATA / f"{name}.txt").read_text("utf-8"),
        title=meta.get("title"),
        url=meta.get("url", "https://example.org/article"),
        site_name=meta.get("site_name"),
    )
    expected = (TESTDATA / f"{name}.txt-result").read_text("utf-8")
    return cleaned.text + "\n", expected


def test_there_are_golden_cases() -> None:
    assert len([c for c in CASES if c.startswith("seed_")]) == 5
    assert len(CASES) >= 12


@pytest.mark.parametrize("name", CASES)
def test_golden(name: str) -> None:
    got, expected = run_case(name)
    assert got == expected


@pytest.mark.parametrize("name", [c for c in CASES if c.startswith("seed_")])
def test_seed_cases_are_the_seed_files(name: str) -> None:
    """The seed golden files are copies of seeds/articles and seeds/expected."""
    seed_id = name.removeprefix("seed_")
    assert (TESTDATA / f"{name}.txt").read_bytes() == (
        SEEDS / "articles" / f"{seed_id}.txt"
    ).read_bytes()
    assert (TESTDATA / f"{name}.txt-result").read_bytes() == (
        SEEDS / "expected" / f"{seed_id}.txt"
    ).read_bytes()


def test_removed_lines_are_recorded_with_position_and_rule() -> None:
    text = (
        "\n"
        "Israel, Russia to Form Working Group on Syria\n"
        "READ MORE: Iran Warns Israel Against 'Adventurism' in Syria\n"
        "\n"
        "Israel and Russia will form a working group, an official said.\n"
        "Soldiers at the border. Photograph: Ronen Zvulun/Reuters\n"
        "Do you like this content? Consider helping us!\n"
    )
    cleaned = clean(
        text,
        title="Israel, Russia to Form Working Group on Syria",
        url="https://example.org/a",
        site_name=None,
    )
    assert cleaned.text == "Israel and Russia will form a working group, an official said."
    assert [(r.position, r.rule) for r in cleaned.removed] == [
        (1, "repeated_headline"),
        (2, "read_more"),
        (5, "photo_credit_label"),
        (6, "donation_appeal"),
    ]
    lines = text.split("\n")
    assert all(lines[r.position] == r.line for r in cleaned.removed)


def test_site_rules_apply_by_domain_or_site_name_only() -> None:
    text = "World\nNetanyahu said the contacts contribute to stability in the region.\nChats\n"
    by_domain = clean(text, title=None, url="https://www.sputniknews.com/x", site_name=None)
    by_name = clean(
        text, title=None, url="http://127.0.0.1:8000/x", site_name="Sputnik International"
    )
    elsewhere = clean(text, title=None, url="https://example.org/x", site_name="Example Times")
    for cleaned in (by_domain, by_name):
        rules = [r.rule for r in cleaned.removed]
        assert rules == ["sputnik.site_header", "sputnik.comment_widget"]
    assert elsewhere.removed == ()
    assert elsewhere.text == text.strip()


def test_whitespace_is_normalised_but_words_are_untouched() -> None:
    text = "  It was decided to\u00a0create a group  with\u00a0the participation of Russia.  \n\n\n"
    cleaned = clean(text, title=None, url="https://example.org/a", site_name=None)
    assert cleaned.text == "It was decided to create a group with the participation of Russia."
    assert cleaned.removed == ()


def test_empty_text() -> None:
    cleaned = clean("", title="Title", url="https://example.org/a", site_name=None)
    assert cleaned.text == ""
    assert cleaned.removed == ()


def test_packaged_rules_load_once_and_have_unique_names() -> None:
    rules = load_rules()
    assert load_rules() is rules
    names = [r.name for r in rules.generic] + [r.name for s in rules.sites for r in s.rules]
    assert len(names) == len(set(names))
    expected = {
        "photo_credit_label",
        "read_more",
        "read_also",
        "read_also_headline",
        "subscribe_banner",
        "sputnik.image_alt",
    }
    assert expected <= set(names)


def _rule(**fields: object) -> dict[str, object]:
    return {"generic": [{"name": "x", "group": "caption", **fields}]}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "top level"),
        (_rule(), "generic[0] (x): give exactly one of regex or lines"),
        (_rule(regex="("), "generic[0] (x): bad regex"),
        (_rule(regex="a", group="nope"), "generic[0] (x).group: must be 'caption', 'related'"),
        (_rule(regex="a", colour=1), "generic[0] (x).colour: unknown key"),
        (_rule(regex="a", max_words=0), "generic[0] (x).max_words: should be greater than"),
        (_rule(regex="a", max_words=True),
         "generic[0] (x).max_words: must be a whole number, not True"),
        (_rule(regex="a", on_prose="sometimes"),
         "generic[0] (x).on_prose: must be 'keep' or 'remove', not 'sometimes'"),
        (_rule(lines=["Share this", {"Share this": None}]),
         "generic[0] (x).lines[1]: must be a string, not a mapping"),
        ({"generic": [], "sites": [{"key": "s", "rules": [{"name": "x", "group": "caption"}]}]},
         "sites[0].rules[0] (x): give exactly one of regex or lines"),
        ({"generic": [], "name_caption_connectors": ["with", True]}, "True is not a lower-case"),
        ({"generic": [], "name_caption_connectors": ["With"]}, "'With' is not a lower-case"),
        (
            {"generic": [{"name": "x", "group": "caption", "regex": "a"}] * 2},
            "duplicate rule name x",
        ),
    ],
)
def test_malformed_rules_are_rejected_by_name(data: object, message: str) -> None:
    with pytest.raises(RuleError, match=re.escape(message)):
        parse_rules(data)


_LINES = st.sampled_from(
    [
        "",
        "   ",
        "READ MORE: Something Else Entirely",
        "Photograph: Ronen Zvulun/Reuters",
        "© Sputnik / Alexey Nikolsky",
        "Facebook",
        "Twitter",
        "0 $",
        "More on this topic:",
        "A short label line",
        "Subscribe",
        "World",
        "Israel and Russia will form a working group on the withdrawal of foreign forces.",
        "Netanyahu said the talks were\u00a0very important, officials said.",
    ]
) | st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"))


@given(
    lines=st.lists(_LINES, max_size=25),
    title=st.none() | st.sampled_from(["A short label line", "World", "Israel and Russia"]),
)
def test_every_non_blank_line_is_either_kept_or_reported(
    lines: list[str], title: str | None
) -> None:
    """Nothing is lost silently and nothing is invented: kept lines and removed
    lines partition the input's non-blank lines, in order."""
    text = "\n".join(lines)
    cleaned = clean(text, title=title, url="https://sputniknews.com/a", site_name=None)
    kept = cleaned.text.split("\n") if cleaned.text else []
    removed = {r.position: r for r in cleaned.removed}
    source = text.split("\n")
    rebuilt = []
    for i, line in enumerate(source):
        if not line.strip():
            continue
        if i in removed:
            assert removed[i].line == line.strip()
        else:
            rebuilt.append(" ".join(line.split()))
    assert kept == rebuilt


@pytest.mark.parametrize(
    "line",
    [
        "The two leaders last met in Paris in November.",
        # A sentence whose parenthesis took the place of its full stop.
        "The official said the group would meet for the first time in Moscow next month "
        "with several other countries (Reuters)",
        "Путин встретился с Нетаньяху в Москве в понедельник.",  # noqa: RUF001 (Cyrillic on purpose)
        "Die Bundesregierung begrüßte den Vorschlag am Mittwoch in Berlin ausdrücklich.",
        "“It was decided to create a group with the participation of Russia,” he said.",
    ],
)
def test_sentences_are_prose(line: str) -> None:
    assert is_prose(line)


@pytest.mark.parametrize(
    "line",
    [
        "Israeli soldiers near the ceasefire line",
        "Russian President Vladimir Putin with Israeli Prime Minister Benjamin Netanyahu.",
        "Nintendo Reveals New Details About Upcoming New Super Mario Bros. U for Wii U",
        "Israel says Iran tried to hack its missile warning system",
        "Photograph: Ronen Zvulun/Reuters",
        "Putin met Netanyahu.",
    ],
)
def test_labels_headlines_and_captions_are_not_prose(line: str) -> None:
    assert not is_prose(line)


_PROSE = st.sampled_from(
    [
        "The two leaders last met in Paris in November.",
        "READ MORE: the talks were said to be very important by the officials.",
        "Lesen Sie auch Merkels Rede, die sie am Dienstag im Bundestag gehalten hat.",
        "© the author of this line is writing a sentence in the body.",
        "The official said the group would meet for the first time in Moscow next month "
        "with several other countries (Reuters)",
    ]
) | st.builds(
    lambda words, end: " ".join(words) + end,
    st.lists(
        st.sampled_from(["the", "talks", "READ", "MORE:", "©", "Putin", "said", "in", "Moscow"]),
        min_size=6,
        max_size=30,
    ),
    st.sampled_from([".", "!", "?", ".)", ".”", ""]),
).filter(is_prose)


@given(line=_PROSE)
def test_no_regex_rule_removes_prose_unless_it_says_so(line: str) -> None:
    """The guarantee of the rules file: a rule that matches every line still
    cannot remove a sentence, unless it declares ``on_prose: remove``."""
    assert is_prose(line)
    text = f"Short label\n{line}\nAnother label"
    every = {"name": "every", "group": "caption", "regex": "."}
    kept = clean(
        text,
        title=None,
        url="https://example.org/a",
        site_name=None,
        rules=parse_rules({"generic": [every]}),
    )
    assert [r.line for r in kept.removed] == ["Short label", "Another label"]
    assert kept.text == " ".join(line.split())
    proof = parse_rules({"generic": [{**every, "on_prose": "remove"}]})
    removed = clean(text, title=None, url="https://example.org/a", site_name=None, rules=proof)
    assert removed.text == ""
    # An exact line is its own proof: the rules file names that very line.
    listed = parse_rules({"generic": [{"name": "x", "group": "promo", "lines": [line]}]})
    exact = clean(text, title=None, url="https://example.org/a", site_name=None, rules=listed)
    assert [r.rule for r in exact.removed] == ["x"]


def test_a_caption_of_names_needs_the_rules_files_connectors() -> None:
    text = "Le président Emmanuel Macron avec la chancelière Angela Merkel.\n"
    packaged = clean(text, title=None, url="https://example.org/a", site_name=None)
    assert [r.rule for r in packaged.removed] == ["name_caption"]
    bare = parse_rules({"generic": []})
    kept = clean(text, title=None, url="https://example.org/a", site_name=None, rules=bare)
    assert kept.removed == ()


@pytest.mark.parametrize(
    ("line", "rule"),
    [
        # a post's dateline, in the five languages newsmon tags
        ("Posted by Jane Doe on April 6, 2019", "post_meta"),
        ("Updated 11:04 AM EST, Wed November 7, 2018", "post_meta"),
        ("Publié le 12/03/2019 à 10h30", "post_meta"),
        ("Veröffentlicht am 12.03.2019 um 10:30 Uhr", "post_meta"),
        ("Publicado el 12 de marzo de 2019", "post_meta"),
        ("Опубликовано 12.03.2019 10:30", "post_meta"),
        # category labels as a cell of a meta row or a list item
        ("Staff writer | Tags: Bridges, Transport", "filed_under"),
        ("by Staff , Filed under: Interview,Events , trackback", "filed_under"),
        ("- Tags:", "filed_under"),
        ("Par la rédaction | Mots-clés : pont, mairie", "filed_under"),
        ("05/10/2018 - Publicado por: Ana Lima - Categoria: Saúde - Tags: ponte, prefeitura",
         "filed_under"),
        ("Jane Doe \u2013 Category: Transport \u2013 3 comments", "filed_under"),
        # bars of utility links
        ("« Previous post: the budget vote | Main | Next post: the recount »", "link_bar"),
        ("Jane Doe, April 6, 2019 | Permalink", "link_bar"),
        ("| Share | « Previous | Next » | Email Print |", "link_bar"),
        ("By Jane Doe | Comments (3)", "link_bar"),
        ("Imprimer | Envoyer | « Article précédent", "link_bar"),
        # a blog theme's comment, feed and author-archive links in the meta row
        ("Posted in Fuel Economy, New Trucks | Post a Comment | RSS Feed", "link_bar"),
        ("Posted by Becky | View all posts by Becky", "link_bar"),
        ("| Weekly Piracy Update \\| Login/Create an account \\| 0 Comments |", "link_bar"),
        ("Publié dans Politique, Transports | Laisser un commentaire", "link_bar"),
        ("Veröffentlicht in Politik | Kommentar schreiben | RSS-Feed", "link_bar"),
        ("Publicado en Política | Deja un comentario", "link_bar"),
        ("Опубликовано в рубрике Политика | Оставить комментарий", "link_bar"),
        # a long tag row, over filed_under's word limit
        ("Tags: Bridges, Transport, City Council, Anne Example, Budget 2019, Ferry Service, "
         "Old Town, Public Works, River Crossing, Traffic, Mayor John Doe, Road Works, Local "
         "Elections, Harbour, Night Buses, Cycle Lanes", "tag_row"),
        ("Mots-clés : pont, mairie, conseil municipal, budget 2019, travaux publics, "
         "circulation, Anne Hidalgo, élections municipales, bac, vieille ville, pistes "
         "cyclables, bus de nuit, quais de Seine, périphérique", "tag_row"),
        ("Schlagwörter: Brücke, Stadtrat, Haushalt 2019, Bauarbeiten, Verkehr, "
         "Bürgermeisterin Anna Beispiel, Fähre, Altstadt, Radwege, Nachtbusse, Kommunalwahl, "
         "Rheinufer, Umleitung, Baustelle, Stau, Parkhaus, ÖPNV, Fußgänger, Brückensanierung, "
         "Lkw-Verbot, Tempo 30", "tag_row"),
        # the comment-feed note of WordPress's Kubrick theme and its translations
        ("You can follow any responses to this entry through the RSS 2.0 feed. You can leave "
         "a response, or trackback from your own site.", "comment_feed_note"),
        ("You can follow any responses to this entry through the RSS 2.0 feed. Both comments "
         "and pings are currently closed.", "comment_feed_note"),
        ("Vous pouvez suivre les réponses à cet article grâce au flux RSS 2.0. Vous pouvez "
         "laisser une réponse, ou faire un trackback depuis votre propre site.",
         "comment_feed_note"),
        ("Du kannst die Kommentare zu diesem Eintrag durch den RSS 2.0 Feed verfolgen. Du "
         "kannst einen Kommentar schreiben, oder einen Trackback auf deiner Seite einrichten.",
         "comment_feed_note"),
        ("Puedes seguir las respuestas a esta entrada a través del feed RSS 2.0. Puedes dejar "
         "una respuesta, o hacer trackback desde tu propio sitio.", "comment_feed_note"),
        ("Вы можете следить за ответами к этой записи через RSS 2.0 ленту. Вы можете оставить "
         "ответ или трекбэк на своём сайте.", "comment_feed_note"),
        # the labels of teaser blocks, an empty comment box, a follow line
        ("More world stories from Example News:", "more_stories_heading"),
        ("Related content from Example.com:", "more_stories_heading"),
        ("Plus d'articles sur ce sujet :", "more_stories_heading"),
        ("Weitere Artikel:", "more_stories_heading"),
        ("Más noticias:", "more_stories_heading"),
        ("Другие новости:", "more_stories_heading"),
        ("The comments to this entry are closed.", "comment_widget"),
        ("Kommentare sind geschlossen", "comment_widget"),
        ("Follow World News on Example.com on Twitter and Facebook", "follow_us"),
        # the label of a block of other stories, alone on its line (pt too)
        ("You may also like", "related_heading"),
        ("Você pode gostar...", "related_heading"),
        ("Leia também:", "related_heading"),
        # a caption closed by its photographer's copyright
        ("Jewels after Jewels, installation views, photos © Inexhibit, 2018", "photo_copyright"),
        ("Le port de Sète au lever du jour, photo © Jean Dupont", "photo_copyright"),
        # machine data alone on its line
        ("2019-11-19T08:57:40+01:00", "machine_data"),
        ("https://static.example.org/images/logo-og-image.png", "machine_data"),
    ],
)
def test_post_meta_and_link_bars_are_removed_by_their_rule(line: str, rule: str) -> None:
    text = f"The council voted on Tuesday to close the old bridge, the mayor said.\n{line}\n"
    cleaned = clean(text, title=None, url="https://example.org/a", site_name=None)
    assert [r.rule for r in cleaned.removed] == [rule]


@pytest.mark.parametrize(
    "line",
    [
        # a sentence that opens like a dateline is prose
        "Published in 1998, the report on the bridge sold thousands of copies in its first year.",
        "Updated figures released on March 4, 2019 show the bridge carries 40,000 cars a day.",
        # table rows: a "|" alone, or one cell that can head a column, is no bar
        "| Party | Votes | Share |",
        "| Main | Print run | Email |",
        "Trackback",
        # French quotes are not the link to a previous post
        "« Le pont restera fermé », a déclaré le maire.",
        "Tags are sold at the door.",
        # a sentence about a photo's copyright ends with its full stop
        "The agency said the photos © belonged to the museum, not the paper.",
        # a dash inside a sentence before a word and a colon is still the sentence's
        "The council chose one category - housing: the rest can wait, the mayor said.",
        # ... or a label and its colon after a spaced dash, in a line that ends as a sentence
        "The update adds what users asked for most \u2014 tags: short labels that group notes.",
        "Every listing must now state its type - category: house, flat or land - before it "
        "goes online.",
        "O judoca conquistou o ouro \u2013 categoria: at\u00e9 73 kg \u2013 neste s\u00e1bado, "
        "em Paris.",
        "More stories said the same thing about the bridge in the last weeks of the long campaign:",
        "Follow the money. The report traced it on Twitter and Facebook.",
        "https://example.org/reports/bridge-2019",
        "2019-11-19",
        # a bare "RSS" or a count of responses can fill a table's cell
        "| Format | RSS | Atom |",
        "| Week | 12 responses | 40% |",
        "Leave a comment below and tell us what you think of the bridge, the mayor said.",
        # a list with a clause in it, or ending in a full stop, is no tag row
        "Tags: the editors of the paper attach them to every story about the bridge, the "
        "council, the mayor, the ferry, the budget vote and the elections of this month",
        "Tags: Bridges, Transport, City Council, Anne Example, Budget 2019, Ferry Service, Old "
        "Town, Public Works, River Crossing, Traffic, Mayor John Doe, Road Works, Local Elections, "
        "Harbour, Night Buses, Cycle Lanes.",
        # a long list under another label can be the article's (over filed_under's limit)
        "Categories: Best Film, Best Director, Best Actress, Best Actor, Best Screenplay, Best "
        "Documentary, Best Short Film, Best Score, Best Editing, Best Sound, Best Costumes, Best "
        "Animated Film",
        # a sentence about a feed, or the other themes' meta line with the post's categories
        "You can follow the debate through the RSS 2.0 feed of the council's website.",
        "Readers can follow any responses to this entry through the RSS 2.0 feed, he said.",
        "This entry was posted in Nikon Lenses and tagged Nikkor. Bookmark the permalink. "
        "Trackbacks are closed, but you can post a comment.",
    ],
)
def test_sentences_and_tables_are_not_post_meta_or_link_bars(line: str) -> None:
    text = f"The council voted on Tuesday to close the old bridge, the mayor said.\n{line}\n"
    cleaned = clean(text, title=None, url="https://example.org/a", site_name=None)
    assert cleaned.removed == ()
    assert cleaned.text.splitlines()[-1] == line


@pytest.mark.parametrize(
    "line",
    ["Cross-posted from the Daily Example Blog.", "Re-elected President Vladimir Putin in Moscow."],
)
def test_a_capitalised_compound_with_a_lower_case_part_is_no_name(line: str) -> None:
    """name_caption: "Cross-posted" is a verb in a sentence's first place."""
    cleaned = clean(line, title=None, url="https://example.org/a", site_name=None)
    assert cleaned.removed == ()
    assert cleaned.text == line


def test_a_hyphenated_name_still_makes_a_caption() -> None:
    line = "President Jean-Pierre Dupont with Mayor Anne Hidalgo in Saint-Denis."
    cleaned = clean(line, title=None, url="https://example.org/a", site_name=None)
    assert [r.rule for r in cleaned.removed] == ["name_caption"]


@pytest.mark.parametrize(
    ("line", "rule"),
    [
        # a teaser's excerpt, closed by its link to the rest (and its date)
        ("- Example Rolls Out 5,000 Kiosks Before Launch Day Holiday shoppers will soon get "
         "a firsthand look at the new console. Read more... 2012-11-05", "teaser_more_link"),
        ("- Example to Celebrate the Launch with a Midnight Gathering First consoles go on "
         "sale on Nov. 18 with a launch event Read more... 2012-11-09", "teaser_more_link"),
        ("| If you prefer a monthly digest, subscribe to the sister newsletter. read more |",
         "teaser_more_link"),
        ("Le maire a présenté mardi le nouveau plan de circulation du centre-ville. "
         "Lire la suite »", "teaser_more_link"),
        ("Der Stadtrat hat am Dienstag die Schließung der alten Brücke beschlossen. "
         "Weiterlesen", "teaser_more_link"),
        ("El ayuntamiento cerrará el viejo puente durante tres semanas de obras. Leer más...",
         "teaser_more_link"),
        ("Городской совет во вторник решил закрыть старый мост на ремонт. Читать далее →",
         "teaser_more_link"),
        # the controls of a gallery or of a series of posts
        ("Previous 1 / 6 Next", "pager"),
        ("\u2039 Back to Story", "pager"),
        ("Previous Post", "pager"),
        ("Next »", "pager"),
        ("Make Financing Cars Cheap and Easy < Prev", "pager"),
        ("« Précédent", "pager"),
        ("Weiter »", "pager"),
        ("Siguiente", "pager"),
        ("Назад", "pager"),
        # the label over a post's trackbacks
        ("Other blogs that reference Preview of my talk at the bridge conference:",
         "backlinks_heading"),
        ("Trackbacks (2):", "backlinks_heading"),
        ("Links to this post:", "backlinks_heading"),
        ("Rétroliens :", "backlinks_heading"),
        ("Liens vers cet article :", "backlinks_heading"),
        ("Enlaces a esta entrada:", "backlinks_heading"),
        # the fallback text of a player or a script
        ("Get the Flash Player to see this player.", "plugin_fallback"),
        ("You need to upgrade your Adobe Flash Player to watch this video.", "plugin_fallback"),
        ("Please enable JavaScript to view the comments powered by Disqus.", "plugin_fallback"),
        ("Veuillez activer JavaScript pour voir cette vidéo.", "plugin_fallback"),
        ("Bitte aktivieren Sie JavaScript, um dieses Video zu sehen.", "plugin_fallback"),
        ("Por favor, habilita JavaScript para ver los comentarios.", "plugin_fallback"),
        ("Включите JavaScript, чтобы посмотреть видео.", "plugin_fallback"),
        # a shortcode the page never rendered
        ('[button link="http://example.org/submit/" type="big"] Send us YOUR review[/button]',
         "shortcode"),
        ("[caption id=”attachment_12” align=”alignleft”] The old bridge[/caption]",
         "shortcode"),
    ],
)
def test_teasers_pagers_and_plugin_texts_are_removed_by_their_rule(line: str, rule: str) -> None:
    text = f"The council voted on Tuesday to close the old bridge, the mayor said.\n{line}\n"
    cleaned = clean(text, title=None, url="https://example.org/a", site_name=None)
    assert [r.rule for r in cleaned.removed] == [rule]


@pytest.mark.parametrize(
    "line",
    [
        # "read more" inside a sentence, or lower-case after a lower-case word
        "Read more about the plan in the ministry's report on the bridge.",
        "Residents who want to know what happens next will have to read more...",
        "Voters said they wanted to read more about the bridge before the vote",
        "Il faut lire la suite du rapport avant de voter sur le pont.",
        # a word of a pager in a heading or a sentence
        "Next year's budget",
        "Previous positions:",
        "UP NEXT",
        "The next council meeting is on Friday, the mayor said on Tuesday.",
        # trackbacks and plugins named in sentences or meta rows
        "trackback",
        "Other blogs that reference the study said the same about the bridge.",
        "Adobe urged users to update Flash Player to fix the flaw, the company said.",
        "Update Flash Player now, security experts warn.",
        "Le ministère demande d'installer la mise à jour de Flash au plus vite.",
        # an editor's brackets in a quotation, a shortcode around a sentence
        '"[The] company will not close the bridge," the mayor said on Tuesday.',
        "[Update]",
        '[quote author="Jane Doe"]The bridge will stay closed until the repairs are done, and the '
        'ferry will run every hour in the meantime, the council said.[/quote]',
    ],
)
def test_sentences_and_headings_are_not_teasers_pagers_or_plugin_texts(line: str) -> None:
    text = f"The council voted on Tuesday to close the old bridge, the mayor said.\n{line}\n"
    cleaned = clean(text, title=None, url="https://example.org/a", site_name=None)
    assert cleaned.removed == ()
    assert cleaned.text.splitlines()[-1] == line


_POST = (
    "Death threats against bloggers are not protected speech\n"
    "I have cancelled my talks at the conference this week, and I will not be blogging again "
    "until the police have found the people who wrote the threats against me.\n"
)


@pytest.mark.parametrize(
    ("signatures", "comments"),
    [
        (["Posted by Kathy on April 6, 2007 | Permalink",
          "Posted by: Andrew | Mar 26, 2007 2:00:18 PM",
          "Posted by: Tim Bray | Mar 26, 2007 2:16:31 PM"],
         ["Wow, that is terrible. I just found your blog recently and it is an amazing read.",
          "Hang in there Kathy."]),
        (["Publié par Claire le 12/03/2019 à 10h30",
          "Publié par Jean Dupont le 12/03/2019 à 11h02",
          "Publié par Marie le 12/03/2019 à 11h40"],
         ["C'est honteux, je suis de tout cœur avec vous et j'espère vous relire bientôt.",
          "Courage !"]),
    ],
)
def test_comments_between_signatures_of_different_writers_are_a_thread(
    signatures: list[str], comments: list[str]
) -> None:
    own, *others = signatures
    text = _POST + f"{own}\n{comments[0]}\n{others[0]}\n{comments[1]}\n{others[1]}\n"
    cleaned = clean(text, title=None, url="https://example.org/a", site_name=None)
    assert [(r.line, r.rule) for r in cleaned.removed] == [
        (own, "post_meta"), (comments[0], "comment_thread"), (others[0], "post_meta"),
        (comments[1], "comment_thread"), (others[1], "post_meta"),
    ]
    assert cleaned.text == _POST.strip()


def test_a_live_blog_signed_by_one_writer_is_no_thread() -> None:
    entries = [
        "Posted by Jane Doe at 10:32 on November 6, 2012",
        "Polls have closed in Virginia, and the first results show a close race there.",
        "Posted by Jane Doe at 10:47 on November 6, 2012",
        "Ohio is too close to call, the networks say, with a third of the votes counted.",
        "Posted by Jane Doe at 11:05 on November 6, 2012",
    ]
    cleaned = clean(_POST + "\n".join(entries), title=None, url="https://example.org/a",
                    site_name=None)
    assert {r.rule for r in cleaned.removed} == {"post_meta"}
    assert entries[1] in cleaned.text.splitlines() and entries[3] in cleaned.text.splitlines()


def test_two_writers_or_a_dateline_in_the_head_make_no_thread() -> None:
    head = "Posted by Editor on November 6, 2012\n"
    lines = [
        "Posted by: Andrew | Nov 6, 2012 2:00 PM",
        "The bridge was closed for three weeks in the spring, the council said.",
        "Posted by: Tim Bray | Nov 6, 2012 2:16 PM",
    ]
    cleaned = clean(head + _POST + "\n".join(lines), title=None, url="https://example.org/a",
                    site_name=None)
    assert {r.rule for r in cleaned.removed} == {"post_meta"}
    assert lines[1] in cleaned.text.splitlines()


@pytest.mark.parametrize(
    "stamps",
    [
        # a live blog's entries, signed by their reporters with the time of day
        ["Updated 10:32 by Jane Smith", "Updated 10:45 by John Doe",
         "Updated 11:02 by Maria Garcia", "Updated 11:20 by Jane Smith"],
        ["Posted 10:32 by Jane Smith", "Posted 10:45 by John Doe",
         "Posted 11:02 by Maria Garcia", "Posted 11:20 by Jane Smith"],
        # an update stamp is the article's, whatever it names: a comment is never updated
        ["Updated by Jane Smith on November 6, 2012 at 10:32",
         "Updated by John Doe on November 6, 2012 at 10:45",
         "Updated by Maria Garcia on November 6, 2012 at 11:02",
         "Updated by Jane Smith on November 6, 2012 at 11:20"],
    ],
)
def test_a_live_blog_signed_by_several_reporters_is_no_thread(stamps: list[str]) -> None:
    entries = [
        "Polls have closed in Virginia, and the first results show a close race there.",
        "Ohio is too close to call, the networks say, with a third of the votes counted.",
        "Turnout in Florida was the highest in twenty years, election officials said.",
    ]
    lines = [stamps[0]]
    for entry, stamp in zip(entries, stamps[1:], strict=True):
        lines += [entry, stamp]
    cleaned = clean(_POST + "\n".join(lines), title=None, url="https://example.org/a",
                    site_name=None)
    assert "comment_thread" not in {r.rule for r in cleaned.removed}
    assert all(entry in cleaned.text.splitlines() for entry in entries)


@pytest.mark.parametrize(("text", "label"), [
    ("You may also like", True), ("  Você  pode gostar…", True), ("Lire aussi :", True),
    ("You may also like this bridge", False), ("Related stories said so.", False), ("", False),
])
def test_a_related_label_is_a_whole_line_of_the_rules(text: str, label: bool) -> None:
    assert is_related_label(text) is label


@pytest.mark.parametrize(("text", "specific"), [
    ("You may also like", True), ("Você pode gostar...", True), ("Lesen Sie auch", True),
    ("Latest news", False), ("Related", False), ("More", False), ("Read more", False),
    ("Trending now", False), ("Top stories", False),
])
def test_a_specific_related_label_is_one_no_section_of_an_article_carries(
        text: str, specific: bool) -> None:
    assert is_related_label(text)
    assert is_related_label(text, specific=True) is specific


def test_every_generic_related_label_is_a_line_of_the_rule() -> None:
    (rule,) = [r for r in load_rules().generic if r.name == "related_heading"]
    assert rule.lines >= GENERIC_RELATED_LABELS
