# ruff: noqa: RUF001 - Chinese text is written with its own full-width commas
"""Word counts in scripts without spaces: the process stage's 40-word floor and the
extractor's 15-word floor must not reject a Chinese or Japanese article as a stub."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.config import parse_settings
from pipeline.content.extract import ExtractionError, extract
from pipeline.content.words import count
from pipeline.models import FeedEntry, FetchedPage, Rejection, TaggedArticle
from pipeline.process import MIN_WORDS, build_context, process_page

# A constructed report (Chinese): each sentence its own paragraph, as news sites lay them out.
ZH = [
    "以色列总理内塔尼亚胡周三在莫斯科与俄罗斯总统普京会谈后表示，两国同意成立一个联合工作组。",
    "这个工作组将与其他国家一起，研究所有外国军队撤出叙利亚的问题。",
    "内塔尼亚胡说，以色列的目标是让伊朗军队离开叙利亚领土。",
    "一名以色列官员表示，会谈持续了大约三个小时，气氛友好。",
    "俄罗斯方面没有立即对以色列总理的说法发表评论。",
    "分析人士认为，莫斯科希望在叙利亚战后重建中发挥主导作用。",
    "以色列多次空袭叙利亚境内的伊朗目标，俄罗斯对此表示关切。",
    "两国领导人还讨论了去年九月一架俄罗斯军机在叙利亚被击落的事件。",
]
JA = "イスラエルとロシアは、シリアからの外国軍の撤退を検討する作業部会を設置することで合意した。"


def test_unspaced_scripts_count_their_characters_over_a_word_length() -> None:
    assert count("Israel and Russia will set up a working group") == 9
    sentence = ZH[0]
    han = sum(1 for c in sentence if "\u4e00" <= c <= "\u9fff")
    assert count(sentence) == -(-han // 2)  # the two punctuation marks are no words
    assert count(f"{sentence} Putin") == count(sentence) + 1
    assert count(JA) > 20  # kana and kanji alike
    assert count("이스라엘과 러시아는 실무 그룹을 구성하기로 했다") == 6  # Korean: its spaces
    assert count("ประเทศไทย มีประชากร") == 4  # Thai: 18 letters, about 5 a word
    assert count("") == 0


def _page(paragraphs: list[str], lang: str) -> bytes:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">'
            f"<title>以色列和俄罗斯将成立叙利亚问题工作组</title></head><body><article>"
            f"<h1>以色列和俄罗斯将成立叙利亚问题工作组</h1>{body}</article></body></html>"
            ).encode()


def _fetched(body: bytes) -> FetchedPage:
    entry = FeedEntry(id="zh-1", feed_url="http://127.0.0.1:8000/feed.xml", feed_name="Feed",
                      url="http://127.0.0.1:8000/zh", title="", summary="", published_at=None)
    return FetchedPage(entry=entry, url=entry.url, status=200,
                       content_type="text/html; charset=utf-8", body=body,
                       fetched_at=datetime(2019, 2, 28, tzinfo=UTC))


def test_a_chinese_report_of_eight_paragraphs_is_stored_not_rejected_as_a_stub() -> None:
    # Before: "too little text after cleaning (8 words; at least 40)" (one word a
    # paragraph), and at 15 paragraphs or fewer already "main text too short" in extract.
    extracted = extract(_page(ZH, "zh"), url="http://127.0.0.1:8000/zh")
    assert count(extracted.text) >= MIN_WORDS > len(extracted.text.split())
    outcome = process_page(_fetched(_page(ZH, "zh")), build_context(parse_settings({})))
    assert isinstance(outcome, TaggedArticle), outcome
    assert outcome.article.text.startswith(ZH[0])


def test_a_chinese_stub_is_still_rejected() -> None:
    stub = ('<!DOCTYPE html><html lang="zh"><head><meta charset="utf-8"><title>图片</title>'
            "</head><body><article><p>以色列总理周三访问莫斯科。</p></article></body></html>")
    with pytest.raises(ExtractionError, match="main text too short: 6 of at least 15"):
        extract(stub.encode(), url="http://127.0.0.1:8000/zh")
    outcome = process_page(_fetched(_page(ZH[:1], "zh")), build_context(parse_settings({})))
    assert isinstance(outcome, Rejection)
    assert "too little text after cleaning" in outcome.reason
