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
