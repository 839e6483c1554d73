"""The retention tests' data, on a DuckDB file (tests/airflow/test_maintenance.py)
and on a lake (tests/integration/test_lake_retention.py): story A of two reports
two days apart, story B of one old report."""

from __future__ import annotations

from typing import Any

from support import factories as f

TEXT = ("Israel and Russia agreed to set up a working group on the withdrawal of foreign "
        "forces from Syria, officials said after the talks in Moscow on Wednesday. ") * 3
OTHER = ("The central bank raised its key interest rate by half a point to curb inflation, "
         "the governor told a news conference in the capital on Thursday. ") * 3
SYRIA = {"name": "syria", "query": "topic:syria", "to": ["analyst@example.org"]}


# Story B's topic, tagged on its report: configured, as an alert on a topic
# no article can carry is a config error.
TOPICS = {"rates": "interest rate OR rates"}


def rates(*to: str) -> dict[str, Any]:
    """The alert rule of story B (a topic of :data:`TOPICS`), sent to ``to``."""
    return {"name": "rates", "query": "topic:rates", "to": list(to)}


def stage_three_reports(settings: Any) -> None:
    """Staged as run-1: reports 1 (A) and 2 (B) at T0 and T0 + 1 h, report 3 (A) two days later."""
    f.stage(settings, "run-1", [
        f.article(1, title="Israel and Russia form a working group on Syria", text=TEXT,
                  source="Outlet 1", topics=("syria",), hours=0),
        f.article(2, title="Central bank raises rates", text=OTHER, source="Outlet 2",
                  topics=("rates",), hours=1),
        f.article(3, title="Israel, Russia working group on foreign forces in Syria",
                  text=TEXT, source="Outlet 3", topics=("syria",), hours=48),
    ])
