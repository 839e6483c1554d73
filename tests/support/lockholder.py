"""Another process holding a DuckDB file open for writing, as the load does."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_HOLD = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
print("locked", flush=True)
sys.stdin.read()   # until the test closes our stdin
con.close()
"""


@contextmanager
def write_lock(database: Path) -> Iterator[None]:
    """While inside, ``database`` is open for writing in another process."""
    with subprocess.Popen([sys.executable, "-c", _HOLD, str(database)],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            assert proc.stdout.readline().strip() == "locked"
            yield
        finally:
            proc.stdin.close()
            proc.wait(timeout=30)
