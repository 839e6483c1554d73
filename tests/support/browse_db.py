"""A small loaded database for the tests of the read side (browse, web, CLI):
three stories over two days, built through the real load."""

from __future__ import annotations

from pathlib import Path

from pipeline import store
from pipeline.config import Settings
from pipeline.store.load import load
from support import factories as f

EVENT = ("Israel and Russia agreed to set up a working group on the withdrawal of foreign "
         "forces from Syria, Prime Minister Benjamin Netanyahu said after meeting President "
         "Vladimir Putin in Moscow. ")
FLOODS = ("Floods in southern Spain forced 3,000 people from their homes as the Guadalquivir "
          "burst its banks near Seville, regional officials said on Tuesday. ")
QUAKE = ("A strong earthquake shook northern Japan on Thursday, cutting power to thousands of "
         "homes in Hokkaido; no tsunami warning was issued, the meteorological agency said. ")
SYRIA_TITLE = "Israel, Russia to form group on foreign forces in Syria"


def build(tmp_path: Path, **overrides: object) -> Settings:
    """Stories: Syria (2 outlets, 2019-02-27 12:00 and 17:00 UTC), Spain floods (1 outlet,
    language es, 18:00), Japan quake (1 outlet, 2019-02-28 18:00)."""
    settings = f.settings(tmp_path, alerts=[{"name": "syria", "query": "topic:syria",
                                             "to": ["analyst@example.org"]}], **overrides)
    f.stage(settings, "run-1", [
        f.article(1, title=SYRIA_TITLE, text=EVENT * 3, source="Outlet One", topics=("syria",),
                  countries=("IL", "RU", "SY"), people=("Vladimir Putin",)),
        f.article(2, title="Netanyahu: Russia and Israel agree on Syria pullout group",
                  text=EVENT * 2, source="Outlet Two", topics=("syria",),
                  countries=("IL", "RU", "SY"), people=("Benjamin Netanyahu",), hours=5),
        f.article(3, title="Thousands flee floods in southern Spain", text=FLOODS * 3,
                  source="Outlet Three", countries=("ES",), hours=6, language="es"),
        f.article(4, title="Earthquake shakes northern Japan", text=QUAKE * 3,
                  source="Outlet Four", countries=("JP",), hours=30),
    ])
    with store.connect(settings.database) as con:
        load(con, settings, "run-1")
    return settings
