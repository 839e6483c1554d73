"""Peak memory of this process and every process it started (Linux /proc, no psutil).

    with TreeMemory(exclude={server_pid}) as memory:
        run_the_pass()
    memory.peak_total_mib, memory.peak_self_mib

A thread samples every ``interval`` seconds: the resident set (VmRSS) of this
process and of all its descendants (the worker pools, the fork server and its
children), summed. The peak of the sum is what the machine had to hold at
once. ``resource.getrusage`` cannot give that: RUSAGE_CHILDREN reports the
largest single child, and only once it has been waited for; the fork server's
workers are not even our children. Our own peak is exact (VmHWM, the kernel's
high-water mark); the total is sampled, so a spike shorter than the interval
can be missed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

_PROC = Path("/proc")


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # The command name is in parentheses and may contain spaces.
        fields = stat[stat.rfind(")") + 2:].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def descendants(pid: int) -> list[int]:
    tree = _children_map()
    out, todo = [], list(tree.get(pid, []))
    while todo:
        child = todo.pop()
        out.append(child)
        todo.extend(tree.get(child, []))
    return out


def _status_kib(pid: int, field: str) -> int:
    try:
        for line in (_PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def rss_kib(pid: int) -> int:
    return _status_kib(pid, "VmRSS")


def worker_peaks_kib(pid: int) -> list[int]:
    """The peak resident set (VmHWM, exact) of each leaf process below ``pid``:
    the workers of a pool, not the fork server that started them."""
    tree = _children_map()
    return [_status_kib(p, "VmHWM") for p in descendants(pid) if not tree.get(p)]


class TreeMemory:
    def __init__(self, *, exclude: Iterable[int] = (), interval: float = 0.1) -> None:
        self.pid = os.getpid()
        self.exclude = set(exclude)
        self.interval = interval
        self.peak_total_kib = 0
        self.peak_children = 0
        # Per stage (see stage()): the peak of the sum, and of this process alone (sampled).
        self.stages: dict[str, tuple[int, int]] = {}
        self._stage = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-memory", daemon=True)

    def sample(self) -> None:
        pids = [p for p in descendants(self.pid) if p not in self.exclude]
        excluded = set()
        for p in self.exclude:  # a server's own children are not ours either
            excluded.update(descendants(p))
        pids = [p for p in pids if p not in excluded]
        own = rss_kib(self.pid)
        total = own + sum(rss_kib(p) for p in pids)
        self.peak_total_kib = max(self.peak_total_kib, total)
        self.peak_children = max(self.peak_children, len(pids))
        if self._stage:
            before = self.stages.get(self._stage, (0, 0))
            self.stages[self._stage] = (max(before[0], total), max(before[1], own))

    def stage(self, name: str) -> None:
        """Peaks from now on count for stage ``name`` (as well as overall)."""
        self.sample()
        self._stage = name
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    @property
    def peak_total_mib(self) -> float:
        return self.peak_total_kib / 1024

    @property
    def peak_self_mib(self) -> float:
        return _status_kib(self.pid, "VmHWM") / 1024

    def __enter__(self) -> TreeMemory:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()
