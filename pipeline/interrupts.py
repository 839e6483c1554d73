"""SIGTERM taken the way Ctrl-C is, while a pass runs (``newsmon run --once``).

Python turns Ctrl-C into KeyboardInterrupt, and a pass stops on it at once
(what is loaded stays loaded; the extraction workers are killed). SIGTERM's
default action ended the process where it stood: its workers, children of
the fork server, went on starting and printed a BrokenPipeError traceback
each. Raised as :class:`Terminated`, a KeyboardInterrupt, it takes the same
way out; the command line says so and exits 143 (128 + 15, as the shell
reports a process SIGTERM ended).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["Terminated", "terminated_as_interrupt"]


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C's KeyboardInterrupt would be."""


@contextmanager
def terminated_as_interrupt() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` while the block runs. Only on the main
    thread, where signals go; a SIGTERM ignored when the process started stays
    ignored, as a SIGINT ignored does (``nohup``)."""
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
        yield
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
