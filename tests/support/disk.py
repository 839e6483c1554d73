"""A real small disk for disk-full tests: a tmpfs mounted in the test's folder.

Mounting needs root (these machines run the tests as root); where it cannot
be done the test is skipped with the reason, never faked.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """``mount`` as a tmpfs of ``size`` (``3m``, ``16m``) for the block; unmounted after."""
    mount.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, *, leave: int = 0) -> Path:
    """Fill ``disk`` until ``leave`` bytes are free (0: not one byte); the filler file."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out:
        for chunk in (65536, 512, 1):
            try:
                while True:
                    stat = os.statvfs(disk)
                    free = stat.f_bavail * stat.f_frsize - leave
                    if free <= 0:
                        break
                    out.write(b"\0" * min(free, chunk))
            except OSError:
                pass
    return filler
