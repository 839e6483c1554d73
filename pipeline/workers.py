"""Run one function in worker processes, each call under a hard time limit.

feedparser and trafilatura have no time limit of their own, and a hostile
input can keep them busy for minutes: feedparser's e-mail regex on an author
field blows up (feedparser/mixin.py ``_sync_author_detail``; 40 kB of
``a.a.a.`` take 13 s, 20 kB 2 s). A thread cannot be stopped, and SIGALRM works
only in a main thread and only between bytecodes (not inside lxml's C code),
so the work runs in worker processes, and a worker whose call overruns is
killed (SIGKILL) and replaced by a fresh one for the next call.

    with WorkerPool(parse, workers=2) as pool:
        result = pool.call(body, timeout=20.0)  # or TimeLimitExceeded

Workers are forkserver children, started on first use: a forked child would
copy the locks of the parent's event loop and HTTP threads. A worker imports
the function's module and runs the initializer before it says it is ready,
so that start-up time (importing trafilatura and building the tagger: about
3.5 s) is never charged to a call's limit.

:meth:`WorkerPool.abort` (Ctrl-C, SIGTERM) kills the workers at once, those
starting and those in a call too: the threads waiting on them return (with
:class:`WorkerDied`) instead of waiting out the start-up or the call's limit.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any, Generic, TypeVar

_MAIN_LOCK = threading.Lock()
# What the process's fork server imports when it starts (see WorkerPool).
_PRELOAD: set[str] = set()


@contextlib.contextmanager
def _main_script_hidden() -> Iterator[None]:
    """forkserver children re-run the parent's ``__main__`` script unless it came
    from ``python -m``; under Airflow that is the ``airflow`` script, whose import
    fails inside a task process (its database is 'airflow-db-not-allowed'). Our
    workers run module-level functions only, so they do not need it."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None or getattr(main, "__spec__", None) is not None:
        yield
        return
    with _MAIN_LOCK:
        del main.__file__
        try:
            yield
        finally:
            main.__file__ = path

__all__ = ["PoolClosed", "TimeLimitExceeded", "WorkerDied", "WorkerPool", "stop_fork_server"]

A = TypeVar("A")
R = TypeVar("R")

# How long a worker may take to exit after its pipe is closed, before it is killed.
_EXIT_GRACE = 2.0


class TimeLimitExceeded(Exception):
    """The call ran longer than its limit; its worker was killed."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"took longer than {seconds:g} s")
        self.seconds = seconds


class WorkerDied(Exception):
    """The worker process exited during a call (a crash, or the OOM killer)."""


class PoolClosed(Exception):
    """A call came after :meth:`WorkerPool.close`."""


class _RemoteError(Exception):
    """An exception from the worker that could not be pickled back as itself."""


def _serve(
    conn: Connection, function: Callable[[Any], Any],
    initializer: Callable[..., None] | None, initargs: tuple[Any, ...],
) -> None:
    # Ctrl-C reaches the whole process group; the parent decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer(*initargs)
    conn.send(("ready", None))
    while True:
        try:
            arg = conn.recv()
        except EOFError:  # the parent closed the pipe: time to go
            return
        try:
            reply: tuple[str, Any] = ("ok", function(arg))
        # The parent re-raises whatever the function raised, as itself: the
        # worker only carries it across the pipe, so it must catch all.
        except Exception as exc:  # noqa: BLE001
            reply = ("error", exc)
        try:
            conn.send(reply)
        except Exception as exc:  # noqa: BLE001 -- unpicklable result or exception
            conn.send(("error", _RemoteError(f"{type(exc).__name__}: {exc}")))


def stop_fork_server() -> None:
    """Kill the process's fork server and the workers it forked, once every
    pool that uses it is aborted (:meth:`WorkerPool.abort`). A worker's start
    waits on the server while it imports the preloaded modules (trafilatura:
    1-2 s); killed, the start fails at once. A pool not aborted yet would
    start a new server for its next worker, and wait on that one's imports.

    The server is stopped (SIGSTOP) before its children are looked for: a
    worker forked a moment before the server was killed, its pid not yet sent
    to the start waiting on it, was left running, unknown to its pool (in 3
    aborts out of 8 that came as the first worker was forked). multiprocessing
    has no public handle on the server (one per process,
    ``forkserver._forkserver``); it starts a new one for the next worker
    (``ensure_running`` finds this one dead)."""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    # Held while a start spawns the server: a pid read then was still None, and
    # the start went on to wait 1-5 s for the server's imports.
    lock = getattr(server, "_lock", None) or contextlib.nullcontext()
    with lock:
        pid = getattr(server, "_forkserver_pid", None)
    if not isinstance(pid, int):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGSTOP)  # forks no more: its children are all there are
        for child in _children(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        os.kill(pid, signal.SIGKILL)
    # Waited for, not reaped (WNOWAIT): until it has exited, the next start's
    # ensure_running (os.waitpid, WNOHANG) takes it for alive and talks to its
    # closed socket (the next pool's start failed in 3 of 5 tries under load);
    # reaped here, that waitpid would fail instead.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux's /proc; elsewhere none)."""
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as stat:
                # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return found


class _Worker:
    """One worker process and its pipe; started on first use, restarted after a kill."""

    def __init__(
        self, context: ForkServerContext, function: Callable[[Any], Any],
        initializer: Callable[..., None] | None, initargs: tuple[Any, ...],
    ) -> None:
        self._context = context
        self._args = (function, initializer, initargs)
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        # abort() runs on another thread than the one starting or calling the
        # worker: it sees the process as soon as it exists, or the start sees
        # the abort and kills what it started.
        self._lock = threading.Lock()
        self._aborted = False

    def _start(self) -> Connection:
        if self._aborted:
            raise WorkerDied("the worker pool was stopped")
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_serve, args=(child, *self._args), daemon=True, name="newsmon-worker"
        )
        try:
            with _main_script_hidden():
                process.start()
        except (EOFError, OSError):  # the fork server was killed (abort) or died
            parent.close()
            child.close()
            raise WorkerDied("the fork server exited while starting a worker") from None
        child.close()
        with self._lock:
            self._process, self._conn = process, parent
            if self._aborted:
                process.kill()
        try:
            kind, detail = parent.recv()  # no limit: start-up is our code, not the input's
        except EOFError:
            self.stop(kill=True)
            raise WorkerDied("worker process exited while starting") from None
        if kind != "ready":
            self.stop(kill=True)
            raise detail if isinstance(detail, BaseException) else WorkerDied(str(detail))
        return parent

    def ready(self) -> None:
        if self._conn is None:
            self._start()

    def call(self, arg: Any, timeout: float) -> tuple[str, Any]:
        conn = self._conn or self._start()
        try:
            conn.send(arg)
            if conn.poll(timeout):
                reply: tuple[str, Any] = conn.recv()
                return reply
        except (EOFError, OSError):
            process = self._process
            if process is not None:
                process.join(_EXIT_GRACE)  # let it finish dying, for its exit code
            code = process.exitcode if process is not None else None
            self.stop(kill=True)
            raise WorkerDied(f"worker process died (exit code {code})") from None
        self.stop(kill=True)
        raise TimeLimitExceeded(timeout)

    def abort(self) -> None:
        """Kill the process now, from any thread; no new one is started. The
        thread starting or calling it gets EOF on its pipe and cleans up."""
        with self._lock:
            self._aborted = True
            process = self._process
            if process is not None:
                process.kill()

    def stop(self, *, kill: bool) -> None:
        with self._lock:
            process, conn = self._process, self._conn
            self._process = self._conn = None
        if conn is not None:
            conn.close()  # the worker's recv() gets EOFError and returns
        if process is None:
            return
        if kill:
            process.kill()
        process.join(_EXIT_GRACE)
        if process.is_alive():
            process.kill()
            process.join()
        process.close()


class WorkerPool(Generic[A, R]):
    """``workers`` processes running ``function``; :meth:`call` is thread-safe.

    ``function`` and ``initializer`` must be module-level functions (they are
    pickled by name), and ``arg`` and the result must pickle.
    """

    def __init__(
        self, function: Callable[[A], R], *, workers: int = 1,
        initializer: Callable[..., None] | None = None, initargs: tuple[Any, ...] = (),
    ) -> None:
        if workers < 1:
            raise ValueError("WorkerPool needs at least one worker")
        context = multiprocessing.get_context("forkserver")
        # The fork server imports these once and every worker forked from it
        # inherits them: a feed parser worker then starts in 15 ms instead of
        # 0.5 s (re-importing feedparser, pydantic, httpx, duckdb). There is
        # one fork server per process, started with the first worker: the
        # modules of every pool made before then (a pipelined pass makes its
        # parser and extraction pools first) are preloaded; the workers of
        # later pools import their modules themselves.
        _PRELOAD.update({function.__module__}, {initializer.__module__} if initializer else ())
        context.set_forkserver_preload(sorted(_PRELOAD))
        self._workers = [_Worker(context, function, initializer, initargs)
                         for _ in range(workers)]
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        for worker in self._workers:
            self._idle.put(worker)
        self._closed = False

    @property
    def size(self) -> int:
        return len(self._workers)

    def start(self) -> None:
        """Start the idle workers now rather than on their first call, so the
        first call does not wait for the start-up (thread-safe)."""
        taken: list[_Worker] = []
        try:
            while len(taken) < len(self._workers):
                try:
                    taken.append(self._idle.get_nowait())
                except queue.Empty:
                    break  # the others are busy, so started
            for worker in taken:
                if not self._closed:
                    worker.ready()
        finally:
            for worker in taken:
                self._idle.put(worker)

    def call(self, arg: A, *, timeout: float) -> R:
        """``function(arg)`` in a worker; its exception is re-raised here.

        Raises:
            TimeLimitExceeded: no result within ``timeout`` seconds (the
                worker is killed; the next call starts a new one).
            WorkerDied: the worker exited during the call.
        """
        worker = self._idle.get()
        try:
            if self._closed:
                raise PoolClosed("the worker pool is closed")
            kind, value = worker.call(arg, timeout)
        finally:
            self._idle.put(worker)
        if kind == "error":
            raise value
        result: R = value
        return result

    def close(self) -> None:
        """Stop the workers, after the calls in progress (each ends within its limit)."""
        self._closed = True
        taken = [self._idle.get() for _ in self._workers]
        for worker in taken:
            worker.stop(kill=False)
            self._idle.put(worker)  # a caller still waiting gets it, and PoolClosed

    def abort(self) -> None:
        """Stop now (Ctrl-C, SIGTERM), from any thread: kill every worker, those
        starting and those in a call too; start none again. The calls and
        starts under way raise :class:`WorkerDied` within moments (but a start
        that waits on the fork server: see :func:`stop_fork_server`); then
        :meth:`close` returns at once."""
        self._closed = True
        for worker in self._workers:
            worker.abort()

    def __enter__(self) -> WorkerPool[A, R]:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
