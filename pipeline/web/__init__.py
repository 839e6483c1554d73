"""``newsmon serve``: a read-only web page over the DuckDB file.

Pages: Stories (filters and the query language), a Story (every report side
by side, the removed lines, a timeline), Feeds (health), Alerts (the outbox
and each rule's backtest) and Chart (reports per hour or day, as SVG drawn on
the server). Starlette serves them through uvicorn; every asset (one
stylesheet) is served by newsmon. Pages are read from a private copy of the
database refreshed after each change, so the server never writes the file and
never keeps the pipeline's writer waiting longer than one file copy (see
:mod:`pipeline.web._reader`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from pipeline.config import Settings
from pipeline.web._app import MAX_QUERY_LENGTH, create_app, host_allowed, loopback_hosts
from pipeline.web._reader import Reader, Updating, View

__all__ = ["MAX_QUERY_LENGTH", "Reader", "Updating", "View", "create_app", "host_allowed",
           "loopback_hosts", "serve"]


def serve(settings: Settings, *, host: str = "127.0.0.1", port: int = 8000,
          snapshot_dir: Path | None = None, ready: Callable[[], None] | None = None) -> None:
    """Serve until interrupted (Ctrl-C). ``ready`` is called once the first copy is
    taken (a damaged database raises StoreError before it), just before listening."""
    import uvicorn

    if snapshot_dir is not None:
        snapshot_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="newsmon-serve-",
                                     dir=snapshot_dir) as directory:
        reader = Reader(settings.database, Path(directory))
        try:
            if settings.database.exists():
                reader.refresh()  # the first page need not wait for the copy
            app = create_app(settings, reader, allowed_hosts=loopback_hosts(host))
            if ready is not None:
                ready()
            # ws="none": no websocket route, and importing a websockets
            # implementation only brings its deprecation warnings.
            uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                        server_header=False, ws="none", lifespan="off")
        finally:
            reader.close()
