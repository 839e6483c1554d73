"""The stop signals' handler of continuous mode (pipeline.run)."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

import pytest

from pipeline.run import _handled_signals


def test_a_stop_signal_sets_stop_and_the_handler_logs_nothing(
        caplog: pytest.LogCaptureFixture) -> None:
    """A handler runs between two bytecodes of the main thread, which may be
    inside a write to stderr ("reentrant call") or hold the logging lock: it
    only sets ``stop``, and the loop that sees it says so."""
    stop = threading.Event()
    # As an interactive shell starts it: a run started in the background
    # inherits SIGINT ignored, and keeps it so (the test below).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _stop_then_interrupt(stop, caplog)
    finally:
        signal.signal(signal.SIGINT, previous)


def _stop_then_interrupt(stop: threading.Event, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG), _handled_signals(stop, None):
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 5
        while not stop.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stop.is_set()
        assert caplog.records == []
        # A second one stops at once.
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)


def test_a_ctrl_c_ignored_when_the_run_started_stays_ignored() -> None:
    """`newsmon run &` in a script (or under nohup) starts with SIGINT ignored,
    as Python and asyncio leave it; continuous mode's handler took it over and
    a Ctrl-C meant for the script's foreground command stopped the run.
    SIGTERM still stops it."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with _handled_signals(stop, None):
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
            assert not stop.is_set()
            os.kill(os.getpid(), signal.SIGTERM)
            deadline = time.monotonic() + 5
            while not stop.is_set() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert stop.is_set()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
