"""A continuous run in a thread, and reports that make three different stories."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import Settings


@contextlib.contextmanager
def continuous(settings: Settings, on_batch: Callable[[Any], None],
               config: Path | None = None) -> Iterator[list[Any]]:
    """``run_continuous`` in a thread until the block ends; then stopped (as by
    SIGTERM), joined, and its result in the list this yields. ``config``: the
    file ``settings`` came from, read again when edited."""
    from pipeline.run import run_continuous

    stop = threading.Event()
    outcome: list[Any] = []
    worker = threading.Thread(target=lambda: outcome.append(run_continuous(
        settings, stop=stop, on_batch=on_batch, config=config)))
    worker.start()
    try:
        yield outcome
    finally:
        stop.set()
        worker.join(timeout=60)
    assert not worker.is_alive()


# Three unrelated events, so each is a story of its own and gets its own email.
EVENTS = {
    "quake": ("Earthquake shakes the coastal city of Valparaiso overnight",
              "A strong earthquake shook the coastal city of Valparaiso overnight, the "
              "national seismology office said, and residents fled their homes into the "
              "streets. Firefighters said several old buildings in the harbour district "
              "collapsed and rescue teams searched the rubble until dawn. The port authority "
              "said cargo operations were suspended while engineers inspected the cranes and "
              "the piers for damage. Schools across the region will stay closed on Tuesday."),
    "match": ("Underdogs win the cup final after a penalty shootout in Lisbon",
              "The underdogs won the cup final in Lisbon after a dramatic penalty shootout, "
              "their goalkeeper saving two kicks before the captain scored the decisive one. "
              "Thousands of supporters celebrated in the stadium until long after midnight. "
              "The coach said the squad had trained penalties every day for a month. The "
              "defeated champions said they would appeal a refereeing decision in the first "
              "half that denied them a goal."),
    "rates": ("Central bank raises its key interest rate by half a point",
              "The central bank raised its key interest rate by half a percentage point on "
              "Thursday, its fourth increase this year, saying inflation remained far above "
              "its target. The governor said borrowing costs would stay high until prices "
              "calmed, and economists said mortgage payments would rise for millions of "
              "households. Bond yields climbed after the announcement while the currency "
              "strengthened against the dollar."),
}

def page(title: str, text: str) -> bytes:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><title>{title}</title></head><body>"
            f"<article><h1>{title}</h1><p>{text}</p></article></body></html>\n").encode()


@dataclass(slots=True)
class Stopped:
    """What ``newsmon run`` printed once stopped by SIGTERM."""

    returncode: int
    out: str
    err: str


@contextlib.contextmanager
def newsmon_run(config: Path) -> Iterator[tuple[subprocess.Popen[str], list[Stopped]]]:
    """``newsmon run --quiet --config CONFIG`` in a process of its own (this
    checkout's code), yielded with a list that holds, once the block ends, what
    it printed after a SIGTERM. The process is killed whatever happens."""
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "run", "--quiet", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(repo)})
    stopped: list[Stopped] = []
    try:
        yield proc, stopped
        assert proc.poll() is None  # still running until told to stop
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        stopped.append(Stopped(returncode=proc.returncode, out=out, err=err))
    finally:
        proc.kill()


def next_line(proc: subprocess.Popen[str]) -> str:
    """The next line the run prints (a batch loaded)."""
    assert proc.stdout is not None
    return proc.stdout.readline()
