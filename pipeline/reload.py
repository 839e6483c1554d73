"""A continuous run takes an edited config file without a restart.

:class:`ConfigWatch` notices an edit (SIGHUP, or the file's modification time,
size or content changing) and reads the file with the very code a start uses
(:func:`pipeline.config.read_config`, :func:`pipeline.config.settings_from`).
An invalid edit is one warning with the config error's sentence, and the run
goes on with the settings it has; a later valid edit says it fixed it.

:func:`reconcile` splits a valid edit in two. What the run opened or built
from its settings when it started (:data:`RESTART_KEYS`) keeps its old value,
with a warning naming each key changed; the rest is taken between two polls
(:meth:`pipeline.stream._Stream.reconfigure`): feeds, alert rules, SMTP, poll
schedule, fetch limits, batching, cluster options, and topics and people (the
extraction workers, whose taggers are built from them, are replaced).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import ConfigError, Settings, read_config, settings_from

log = logging.getLogger(__name__)

# Opened or built when the run starts, and held until it ends: the database
# and the staging folder (the pass lock lives there), the store (a lake's
# catalog and data path), and the number of extraction workers (the stream's
# threads and slots are sized by it). The workers' taggers are not: new
# workers are started with the new topics and people.
RESTART_KEYS = ("database", "staging_dir", "store", "process")

# A stat is cheap: the stream's naps look at the file this often. Its content
# is read again at least this often, for an edit that kept size and time.
STAT_EVERY = 1.0
READ_EVERY = 60.0
# An editor may save in two writes (truncate, then write): a file that does
# not read is read once more this long after, before it is warned of.
SETTLE = 0.3


@dataclass(frozen=True, slots=True, kw_only=True)
class Reload:
    """A valid edit: the settings to go on with, and what changed, in words."""

    settings: Settings  # the file's, with RESTART_KEYS as the run started
    changes: tuple[str, ...]  # each live change, for the log line
    waiting: tuple[str, ...]  # keys changed in the file that wait for a restart


def reconcile(running: Settings, edited: Settings) -> Reload:
    """``edited`` as the running process can take it: the restart keys kept."""
    taken = edited.model_copy(update={key: getattr(running, key) for key in RESTART_KEYS})
    before, after = running.model_dump(mode="json"), edited.model_dump(mode="json")
    waiting = [k for key in RESTART_KEYS for k in _keys(before[key], after[key], key)]
    changes = _feed_changes(running, taken) + _rule_changes(running, taken)
    others = [k for key in Settings.model_fields
              if key not in RESTART_KEYS and key not in ("feeds", "alerts")
              for k in _keys(before[key], after[key], key)]
    if others:
        changes.append("changed: " + ", ".join(others))
    return Reload(settings=taken, changes=tuple(changes), waiting=tuple(waiting))


def _keys(old: Any, new: Any, prefix: str) -> list[str]:
    """The dotted keys under ``prefix`` whose values differ (a list is one value)."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        return [k for key in sorted(old.keys() | new.keys())
                for k in _keys(old.get(key), new.get(key), f"{prefix}.{key}")]
    return [prefix]


def _feed_changes(old: Settings, new: Settings) -> list[str]:
    before = {f.url: f for f in old.feeds}
    after = {f.url: f for f in new.feeds}
    return _listed(("feeds added", [u for u in after if u not in before]),
                   ("feeds removed", [u for u in before if u not in after]),
                   ("feeds renamed", [u for u in after if u in before and after[u] != before[u]]))


def _rule_changes(old: Settings, new: Settings) -> list[str]:
    before = {r.name: r for r in old.alerts}
    after = {r.name: r for r in new.alerts}
    return _listed(("alert rules added", [n for n in after if n not in before]),
                   ("alert rules changed", [n for n in after
                                            if n in before and after[n] != before[n]]),
                   ("alert rules removed", [n for n in before if n not in after]))


def _listed(*groups: tuple[str, list[str]]) -> list[str]:
    return [f"{label}: {', '.join(names)}" for label, names in groups if names]


def _signature(path: Path) -> tuple[int, int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size, stat.st_ino, stat.st_dev


class ConfigWatch:
    """The config file of a continuous run: :meth:`due` between the stream's
    naps (a stat at most every :data:`STAT_EVERY` seconds), :meth:`check`
    between its polls; :meth:`request` from a SIGHUP handler."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # SIGHUPs: counted by the handler, the count looked at by the loop, each
        # written by one side only. No lock: a handler runs in the main thread,
        # between two bytecodes of the loop, maybe while the loop holds it (a
        # threading.Event's, in clear(): it waited for itself for ever).
        self._requests = self._handled = 0
        self._signature = _signature(path)
        try:
            self._digest: str | None = hashlib.sha256(read_config(path)).hexdigest()
        except ConfigError:
            self._digest = None
        self._stat_at = self._read_at = time.monotonic()
        self._broken: str | None = None  # the error of the file as last read, until fixed
        # A version of the file that did not read, held back once: when to read it again.
        self._held: tuple[int, int, int, int] | None = None
        self._again_at: float | None = None

    def request(self) -> None:
        """Read the file again at the next look, changed or not (SIGHUP):
        takes no lock, as a signal handler must not."""
        self._requests += 1

    def due(self) -> bool:
        """Whether :meth:`check` has something to look at: a SIGHUP, or the
        file's time, size or inode changed."""
        if self._requests != self._handled:
            return True
        now = time.monotonic()
        if self._again_at is not None and now >= self._again_at:
            return True
        if now - self._stat_at < STAT_EVERY:
            return False
        self._stat_at = now
        return _signature(self.path) != self._signature

    def check(self, running: Settings) -> Reload | None:
        """The edited settings when the file changed (or a SIGHUP asked) and
        is valid; None otherwise, with a warning once for an invalid edit."""
        seen = self._requests
        asked, self._handled = seen != self._handled, seen
        signature = _signature(self.path)
        now = time.monotonic()
        if not asked and signature == self._signature:
            if self._again_at is not None:
                if now < self._again_at:
                    return None  # held back: the editor may still be writing
            elif now - self._read_at < READ_EVERY:
                return None
        self._signature, self._read_at, self._again_at = signature, now, None
        try:
            raw = read_config(self.path)
            digest = hashlib.sha256(raw).hexdigest()
            if digest == self._digest and not asked:
                return None  # touched, or saved unchanged
            edited = settings_from(raw, self.path)
        except ConfigError as exc:
            if not asked and self._held != signature:
                # Looked at again shortly, not warned of yet; the last good
                # content stays the one to compare with (saved unchanged: quiet).
                self._held, self._again_at = signature, now + SETTLE
            else:
                self._digest = None  # its fix is a reload, even back to what it was
                self._refuse(str(exc), asked=asked)
            return None
        self._digest, self._held = digest, None
        fixed, self._broken = self._broken is not None, None
        reload = reconcile(running, edited)
        log.info("config reloaded from %s%s%s: %s", self.path, " (on SIGHUP)" if asked else "",
                 " (the error before is fixed)" if fixed else "",
                 "; ".join(reload.changes) or "nothing changed")
        if reload.waiting:
            log.warning("%s: %s cannot change while newsmon runs: the run goes on with "
                        "the values it started with, the new ones take effect after a restart",
                        self.path, ", ".join(reload.waiting))
        return reload

    def _refuse(self, error: str, *, asked: bool) -> None:
        if error != self._broken or asked:
            log.warning("config not reloaded, the run goes on with the settings it has: %s",
                        error)
        self._broken = error
