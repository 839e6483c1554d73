"""The web page in a real headless Chromium (Debian's chromium and chromium-driver,
driven by selenium) against a real ``newsmon serve`` over the database of a real
``newsmon demo``, plus one hostile story.

With NEWSMON_SCREENSHOTS=docs/screenshots the screenshots are also copied there
(relative to the repository), for the README.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.demo_run import DemoRun
from support.hostile import HOSTILE_TITLE, add_hostile_story
from support.webserver import serve_process
from support.wide import RTL_STORY, RTL_TITLE, WIDE_STORY, add_wide_rows

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ROOT = Path(__file__).resolve().parents[2]
SEED_OUTLETS = {"AMN Al-Masdar News", "Frontline Digest", "Levant Ledger", "SouthFront",
                "Sputnik International"}
SEED_TITLE = "Russia And Israel To Form Working Group On Withdrawal Of Foreign Forces From Syria"

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="needs Debian's chromium and chromium-driver: apt-get install -y chromium "
           "chromium-driver",
)


@contextlib.contextmanager
def _served_copy(demo_run: DemoRun, directory: Path,
                 add_rows: Callable[[Path], object]) -> Iterator[str]:
    """``newsmon serve`` over a copy of the demo's database in ``directory``,
    ``add_rows`` run on the copy first."""
    database = directory / "news.duckdb"
    shutil.copyfile(demo_run.database, database)
    add_rows(database)
    config = yaml.safe_load(demo_run.config.read_text(encoding="utf-8"))
    config["database"] = str(database)
    (directory / "newsmon.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    with serve_process(directory / "newsmon.yaml") as base:
        yield base


@pytest.fixture(scope="module")
def site(demo_run: DemoRun, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``newsmon serve`` over a copy of the demo's database with a hostile story added."""
    with _served_copy(demo_run, tmp_path_factory.mktemp("browser"), add_hostile_story) as base:
        yield base


@pytest.fixture(scope="module")
def wide_site(demo_run: DemoRun, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``newsmon serve`` over a copy of the demo's database with the rows of
    support.wide added (words longer than a screen, right-to-left text)."""
    with _served_copy(demo_run, tmp_path_factory.mktemp("wide"), add_wide_rows) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1400,1000"):
        options.add_argument(flag)
    with tempfile.TemporaryDirectory(prefix="newsmon-chromium-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
        driver.set_page_load_timeout(20)
        try:
            yield driver
        finally:
            driver.quit()


def css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def arrive(driver: Any, url_part: str) -> None:
    """Wait for the navigation a click or submit started (a click returns before the
    next page is there on a busy machine)."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 15).until(
        lambda d: url_part in d.current_url
        and d.execute_script("return document.readyState") == "complete")


# Decoded by the browser itself: the PNG drawn on a canvas, its pixels counted.
_COLOURS = """
const [data, done] = arguments;
const img = new Image();
img.onload = () => {
  const c = document.createElement('canvas');
  c.width = img.width; c.height = img.height;
  const g = c.getContext('2d'); g.drawImage(img, 0, 0);
  const px = g.getImageData(0, 0, c.width, c.height).data;
  const seen = new Set();
  for (let i = 0; i < px.length && seen.size < 1000; i += 4 * 7) {
    seen.add((px[i] << 16) | (px[i + 1] << 8) | px[i + 2]);
  }
  done([c.width, c.height, seen.size]);
};
img.onerror = () => done([0, 0, 0]);
img.src = 'data:image/png;base64,' + data;
"""


def screenshot(driver: Any, name: str, folder: Path, *, readme: bool = True) -> Path:
    """Save the whole page as folder/name.png and check it is a real render
    (``readme``: also copied to $NEWSMON_SCREENSHOTS when set)."""
    # The whole page, not only the window (at most 2,400 CSS pixels tall).
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"],
                 "height": min(size["height"], 2400), "scale": 1}})
    png = base64.b64decode(shot["data"])
    path = folder / f"{name}.png"
    path.write_bytes(png)
    url = driver.current_url
    driver.get("about:blank")
    width, tall, colours = driver.execute_async_script(
        _COLOURS, base64.b64encode(png).decode("ascii"))
    driver.get(url)
    assert colours > 20, f"{name}: {colours} colours: a blank or single-colour render"
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000, (name, len(png))
    assert width >= 1000 and tall >= 600, (name, width, tall)
    target = os.environ.get("NEWSMON_SCREENSHOTS")
    if target and readme:
        out = ROOT / target
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, out / path.name)
    return path


def test_the_seed_story_appears_with_its_five_outlets(browser: Any, site: str,
                                                      tmp_path: Path) -> None:
    browser.get(site + "/")
    stories = css(browser, "li.story")
    assert len(stories) == 2  # the seed story and the hostile one
    seed = next(s for s in stories if SEED_TITLE in s.text)
    assert seed.find_element("css selector", ".outlets").text == "5 outlets"
    outlets = set(seed.find_element("css selector", ".sources").text.split(" · "))
    assert outlets == SEED_OUTLETS
    assert "syria" in seed.text and "Vladimir Putin" in seed.text
    screenshot(browser, "stories-all", tmp_path, readme=False)


def test_the_first_tab_offers_to_skip_the_filters_to_the_stories(browser: Any,
                                                                  site: str) -> None:
    """About 25 filter fields stand before the first story: the first Tab
    shows a link past them, and the Tab after it reaches the first story."""
    from selenium.webdriver.common.keys import Keys

    browser.get(site + "/")
    body = browser.find_element("css selector", "body")
    body.send_keys(Keys.TAB)
    active = browser.switch_to.active_element
    assert (active.text, active.get_attribute("href")) == (
        "Skip to the stories", site + "/#stories")
    assert active.rect["x"] >= 0  # shown once focused
    active.send_keys(Keys.ENTER)
    browser.switch_to.active_element.send_keys(Keys.TAB)
    first = browser.switch_to.active_element
    story = css(browser, "li.story")[0]
    assert first.get_attribute("href") == story.find_element(
        "css selector", "a").get_attribute("href"), first.get_attribute("outerHTML")


def test_a_filter_and_a_search_narrow_the_list(browser: Any, site: str, tmp_path: Path) -> None:
    from selenium.webdriver.support.ui import Select

    browser.get(site + "/")
    assert len(css(browser, "li.story")) == 2
    Select(css(browser, "#topic")[0]).select_by_visible_text("syria")
    css(browser, "#apply")[0].click()
    arrive(browser, "topic=syria")
    titles = [e.text for e in css(browser, "li.story a.title")]
    assert titles == [SEED_TITLE]
    screenshot(browser, "stories", tmp_path)

    browser.get(site + "/")
    box = css(browser, "#q")[0]
    box.send_keys('"working group" AND person:putin')
    box.submit()
    arrive(browser, "person%3Aputin")
    assert [e.text for e in css(browser, "li.story a.title")] == [SEED_TITLE]
    assert css(browser, "#count")[0].text.startswith("1 story matches")

    browser.get(site + "/")
    css(browser, "#q")[0].send_keys("putin AND (")
    css(browser, "#apply")[0].click()
    arrive(browser, "AND+%28")
    assert "Search:" in css(browser, "#error")[0].text and css(browser, "li.story") == []


def test_a_story_page_shows_every_report_and_the_removed_lines(browser: Any, site: str,
                                                              tmp_path: Path) -> None:
    browser.get(site + "/")
    next(a for a in css(browser, "li.story a.title") if a.text == SEED_TITLE).click()
    arrive(browser, "/story/")
    assert css(browser, "#story-title")[0].text == SEED_TITLE
    reports = css(browser, "article.report")
    assert len(reports) == 5
    assert {r.find_element("css selector", ".outlet").text for r in reports} == SEED_OUTLETS
    for report in reports:
        link = report.find_element("css selector", "a.original").get_attribute("href")
        assert link.startswith("http://127.0.0.1:")
        assert len(report.find_element("css selector", ".text").text) > 200
    assert len(css(browser, "#timeline circle.report")) == 5
    removed = css(browser, "details.removed")
    assert len(removed) == 5
    # Collapsed until opened.
    with_lines = [d for d in removed if d.find_elements("css selector", "li")]
    assert with_lines
    first = with_lines[0]
    line = first.find_element("css selector", "li")
    assert not line.is_displayed()
    first.find_element("css selector", "summary").click()
    assert line.is_displayed() and line.text
    screenshot(browser, "story", tmp_path)


def test_a_hostile_title_renders_as_text(browser: Any, site: str, tmp_path: Path) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    browser.get(site + "/?q=source:evil")
    titles = [e.text for e in css(browser, "li.story a.title")]
    assert titles == [HOSTILE_TITLE]
    css(browser, "li.story a.title")[0].click()
    arrive(browser, "/story/s-evil")
    assert css(browser, "#story-title")[0].text == HOSTILE_TITLE
    assert css(browser, ".outlet")[0].text == '<b onmouseover="alert(2)">Evil Outlet</b>'
    assert "<script>alert(4)</script>" in css(browser, ".text")[0].text
    for page in (site + "/", browser.current_url):
        browser.get(page)
        assert css(browser, "script") == [] and css(browser, "img") == []
        assert css(browser, "iframe") == [] and css(browser, "i, u") == []
        assert css(browser, "[onmouseover], [onerror]") == []
        assert css(browser, 'a[href^="javascript"]') == []
        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert.text  # noqa: B018 (reading it is the check)
    screenshot(browser, "hostile", tmp_path, readme=False)


def test_the_render_check_catches_a_blank_page(browser: Any, tmp_path: Path) -> None:
    browser.get("data:text/html,<body style='background:%23fff'></body>")
    with pytest.raises(AssertionError, match="single-colour"):
        screenshot(browser, "blank", tmp_path, readme=False)


def test_feeds_alerts_and_chart_pages(browser: Any, site: str, tmp_path: Path) -> None:
    browser.get(site + "/feeds")
    row = css(browser, "#feeds tr.feed")
    assert len(row) == 1 and "Seed outlets (demo)" in row[0].text and "active" in row[0].text
    assert "5 articles stored" in css(browser, "#last-pass")[0].text
    screenshot(browser, "feeds", tmp_path)

    browser.get(site + "/alerts")
    assert "1 sent" in css(browser, "#alert-counts")[0].text
    outbox = css(browser, "#outbox tr.alert")
    assert len(outbox) == 1 and SEED_TITLE in outbox[0].text
    assert SEED_TITLE in css(browser, "#rule-1")[0].text  # the backtest finds the story
    screenshot(browser, "alerts", tmp_path)

    browser.get(site + "/chart?topic=syria&by=day")
    bars = css(browser, "#chart rect.bar")
    assert len(bars) == 7  # 2019-02-26 to 2019-03-04 (the seeds' own dates), 1 and 2 March empty
    assert css(browser, "#count")[0].text.startswith("5 reports")
    screenshot(browser, "chart", tmp_path)


def test_the_charts_counts_reach_a_keyboard_and_a_touch(browser: Any, site: str) -> None:
    """A bar's count is not only a tooltip: the bars show it, and the table of
    numbers under the chart opens from the keyboard (Enter on its summary)."""
    from selenium.webdriver.common.keys import Keys

    browser.get(site + "/chart?topic=syria&by=day")
    shown = [t.text for t in css(browser, "#chart text.bar-count")]
    assert len(shown) == 5 and sum(int(n) for n in shown) == 5  # 1 and 2 March: no bar
    summary = css(browser, "#chart-numbers summary")[0]
    assert not css(browser, "#chart-numbers tbody tr")[0].is_displayed()
    summary.send_keys(Keys.ENTER)  # a <summary> takes the focus and Enter opens it
    rows = css(browser, "#chart-numbers tbody tr")
    assert len(rows) == 7 and all(r.is_displayed() for r in rows)
    assert rows[0].text.split() == ["2019-02-26", "1"]


# The page's own width and the widest element past the window's right edge.
_OVERFLOW = """
const vw = document.documentElement.clientWidth;
let widest = null;
for (const e of document.querySelectorAll('body *')) {
  const r = e.getBoundingClientRect();
  if (r.width > 0 && r.right > vw + 1 && (!widest || r.right > widest[1])) {
    widest = [e.tagName + '.' + e.className, Math.round(r.right)];
  }
}
return [vw, document.documentElement.scrollWidth, widest];
"""


@pytest.mark.parametrize("width", [1400, 375])
def test_long_words_and_errors_stay_inside_the_window(browser: Any, wide_site: str,
                                                      width: int) -> None:
    """A title, a text, a feed address or an error of one long word wraps (or its
    table scrolls in its own box): the page never gets wider than the window, at
    a desktop's width and a phone's."""
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": 800, "deviceScaleFactor": 1, "mobile": width < 500})
    try:
        for path in ("/", f"/story/{WIDE_STORY}", "/feeds", "/alerts", "/chart"):
            browser.get(wide_site + path)
            window, page, widest = browser.execute_script(_OVERFLOW)
            assert page <= window, (path, width, page, widest)
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


# Where the first and the last character of an element's text are drawn.
_ENDS = """
const node = arguments[0].firstChild, range = document.createRange();
range.setStart(node, 0); range.setEnd(node, 1);
const first = range.getBoundingClientRect().left;
range.setStart(node, node.length - 1); range.setEnd(node, node.length);
return [first, range.getBoundingClientRect().left];
"""


def test_right_to_left_titles_and_texts_read_right_to_left(browser: Any,
                                                           wide_site: str) -> None:
    """An Arabic title ending in "!" has its "!" at the left end, after the last
    word, not at the right end before the first (what a left-to-right paragraph
    does with it), in the list and on the story's page; its text too."""
    browser.get(wide_site + "/?lang=ar")
    title = css(browser, "li.story a.title")
    assert [t.text for t in title] == [RTL_TITLE]
    first, last = browser.execute_script(_ENDS, title[0])
    assert last < first, "the '!' is drawn right of the title's first letter"
    browser.get(wide_site + f"/story/{RTL_STORY}")
    for element in (css(browser, "#story-title")[0], css(browser, "article.report h3")[0]):
        first, last = browser.execute_script(_ENDS, element)
        assert last < first, element.tag_name
    assert browser.execute_script(
        "return getComputedStyle(arguments[0]).direction",
        css(browser, "article.report .text p")[0]) == "rtl"
