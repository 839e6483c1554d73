"""What the DAG tasks need from Airflow, kept out of the DAG files.

The DAG files (``dags/``) are configuration; their tasks import this module
(and :mod:`pipeline.run`) inside the task body, never at module level. Airflow
itself is imported lazily here too, so the module can be imported (and its
pure parts tested) without it.

- :func:`pipeline_run_id` turns an Airflow run id into a staging-safe newsmon
  run id, deterministically, so every retry of a task reuses the same
  staging folder and the load's "this run id is already loaded" check works.
- :func:`settings_from_airflow` loads the config named by ``NEWSMON_CONFIG``
  or, failing that, by the Airflow Variable ``newsmon_config``.
- :class:`ConnectionMailer` delivers alerts through an Airflow SMTP
  connection (``smtp_default``), with the smtp provider's meaning of its
  extras.
- :func:`worker_processes_allowed` lets a task start the pipeline's
  forkserver workers (feed parsing and extraction run in child processes).
- :func:`as_xcom` is what a task returns: its stage's summary record
  (``PollSummary``, ``ShardPart``, ``ProcessSummary``, ``PlanResult``,
  ``LoadResult``) by field name, so the record's dataclass is the one
  definition of its XCom.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pipeline import alert
from pipeline.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

log = logging.getLogger(__name__)

CONFIG_ENV = "NEWSMON_CONFIG"
CONFIG_VARIABLE = "newsmon_config"
SMTP_CONN_ID = "smtp_default"
# How many process shards a run may fan out to (dynamic task mapping). Read
# inside the planning task, so changing it needs no DAG re-parse.
MAX_SHARDS_ENV = "NEWSMON_MAX_SHARDS"
DEFAULT_MAX_SHARDS = 4

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def pipeline_run_id(airflow_run_id: str) -> str:
    """A staging-safe newsmon run id derived from an Airflow run id.

    Airflow run ids look like ``scheduled__2025-01-01T00:05:00+00:00`` and may
    be anything a user typed when triggering. Staging folders are named by run
    id, so '/' and a leading '.' are refused (:func:`pipeline.store.staging.run_dir`).
    The readable part keeps the letters, digits, '_', '.', '-'; the hash of the
    raw id keeps two ids that differ only in dropped characters apart.
    """
    if not airflow_run_id:
        raise ValueError("empty Airflow run id")
    readable = _UNSAFE.sub("-", airflow_run_id).strip(".-")[:80] or "run"
    digest = hashlib.sha256(airflow_run_id.encode("utf-8")).hexdigest()[:10]
    return f"af-{readable}-{digest}"


XComValue = str | int | bool | None
# A send round's XCom: its emails. When the next attempt is due and why a
# round stopped are the outbox's (the alerts table), not the DAG's.
SEND_XCOM = ("sent", "failed", "pending")


def as_xcom(result: DataclassInstance, *, only: Collection[str] | None = None
            ) -> dict[str, XComValue]:
    """A stage's summary record as a task's XCom: its fields by name (``only``
    those when given). XCom carries ids and counts, never article text or
    other payload: a field of any other type is an error."""
    out: dict[str, XComValue] = {}
    for f in fields(result):
        if only is not None and f.name not in only:
            continue
        value = getattr(result, f.name)
        if value is not None and not isinstance(value, str | int):  # bool is an int
            raise TypeError(f"{type(result).__name__}.{f.name} is a {type(value).__name__}:"
                            " an XCom carries ids and counts only; leave the field out")
        out[f.name] = value
    return out


class _HasRunAfter(Protocol):
    @property
    def run_after(self) -> datetime: ...


def run_time(dag_run: _HasRunAfter) -> datetime:
    """The run's own clock: the same on every try of every task of the run.

    ``run_after`` is set for scheduled, manual and asset-triggered runs alike
    (a manual run in Airflow 3 may have no logical date), and it does not move
    when a task is retried or cleared, so "which feeds are due" is decided the
    same way each time.
    """
    return dag_run.run_after


@contextmanager
def worker_processes_allowed() -> Iterator[None]:
    """Run a stage that starts worker processes inside an Airflow task.

    multiprocessing makes every forkserver (and spawn) child run the parent's
    ``__main__`` script again before it does any work, unless ``__main__``
    was started with ``python -m`` (then it is skipped). In a task started by
    the ``airflow`` console script (``airflow scheduler``, ``celery worker``,
    ``standalone``) that script is Airflow itself, and importing Airflow in
    the child fails: Airflow 3 hides the metadata database URL from task
    processes (``sqlalchemy.exc.ArgumentError: Could not parse SQLAlchemy
    URL``), so every feed came back "the feed parser crashed: worker process
    exited while starting". The workers run module-level functions of
    ``pipeline``, which never need ``__main__``: hide the script's path while
    the stage runs, and put it back afterwards. (A task runs one stage at a
    time; this is not meant for several threads at once.)
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None or getattr(main, "__spec__", None) is not None:
        yield
        return
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path


def max_shards(environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    raw = env.get(MAX_SHARDS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_SHARDS
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{MAX_SHARDS_ENV}={raw!r}: expected a whole number") from None
    if value < 1:
        raise ConfigError(f"{MAX_SHARDS_ENV}={raw!r}: must be at least 1")
    return value


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """The config file: ``$NEWSMON_CONFIG``, else the Variable ``newsmon_config``.

    The Variable is read here, at task run time: a DAG file that reads a
    Variable at import hits the metadata database on every parse.
    """
    env = os.environ if environ is None else environ
    value = env.get(CONFIG_ENV, "").strip()
    if not value:
        from airflow.sdk import Variable

        stored = Variable.get(CONFIG_VARIABLE, default=None)
        value = str(stored).strip() if stored else ""
    if not value:
        raise ConfigError(
            f"no newsmon config: set the environment variable {CONFIG_ENV} (or the Airflow "
            f"Variable {CONFIG_VARIABLE}) to the path of the YAML file"
        )
    return Path(value)


def settings_from_airflow() -> Settings:
    return load_settings(config_path())


# -- alert delivery through an Airflow connection ------------------------------------------


class SmtpConnection(Protocol):
    """The fields of an Airflow connection the mailer reads."""

    @property
    def host(self) -> str | None: ...
    @property
    def port(self) -> int | None: ...
    @property
    def login(self) -> str | None: ...
    @property
    def password(self) -> str | None: ...
    @property
    def extra_dejson(self) -> dict[str, Any]: ...


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


def _flag(extras: Mapping[str, Any], key: str) -> bool:
    # Extras from a connection URI arrive as strings ("?disable_ssl=false");
    # bool("false") would be True.
    value = extras.get(key, False)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(f"SMTP connection extra {key}={value!r}: expected true or false")
    return bool(value)


@dataclass(slots=True)
class ConnectionMailer:
    """An :class:`pipeline.alert.Mailer` built from an Airflow SMTP connection.

    Transport, login and password come from the connection; the From address
    from its ``from_email`` extra when set (else from the rendered message,
    i.e. ``smtp.sender`` in the config).
    """

    smtp: alert.SmtpMailer
    from_email: str | None = None

    def send(self, message: EmailMessage) -> None:
        if self.from_email:
            message.replace_header("From", self.from_email)
        self.smtp.send(message)

    def close(self) -> None:
        self.smtp.close()


def mailer_from_connection(conn: SmtpConnection) -> ConnectionMailer:
    """Read a connection the way the smtp provider's ``SmtpHook`` does.

    Extras: ``disable_ssl`` (default false: SMTP over TLS, port 465),
    ``disable_tls`` (default false: STARTTLS when not over TLS), ``timeout``
    (seconds, default 30), ``from_email``. A plain server such as Mailpit
    needs both ``disable_ssl`` and ``disable_tls`` set to true.
    """
    extras = conn.extra_dejson
    use_ssl = not _flag(extras, "disable_ssl")
    starttls = not use_ssl and not _flag(extras, "disable_tls")
    mode = "smtps" if use_ssl else ("smtp+starttls" if starttls else "smtp")
    default_port = 465 if use_ssl else (587 if starttls else 25)
    try:
        timeout = float(extras.get("timeout", 30))
    except (TypeError, ValueError):
        raise ConfigError(
            f"SMTP connection extra timeout={extras.get('timeout')!r}: expected seconds"
        ) from None
    from_email = extras.get("from_email")
    return ConnectionMailer(
        smtp=alert.SmtpMailer(
            host=conn.host or "localhost",
            port=conn.port or default_port,
            mode=mode,
            username=conn.login or None,
            password=conn.password or None,
            timeout=timeout,
        ),
        from_email=str(from_email) if from_email else None,
    )


def connection_mailer(settings: Settings, conn_id: str = SMTP_CONN_ID) -> alert.Mailer:
    """The mailer for alert delivery under Airflow.

    The connection ``conn_id`` when it exists. Without it, the config decides,
    as for the CLI (its ``smtp:`` section, or ``.eml`` files in the outbox
    folder), with a warning: a local ``airflow standalone`` works with no
    connection set up, and the log says where the emails went.
    """
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        fallback = alert.mailer_for(settings)
        where = (
            f"the config's smtp.url ({settings.smtp.url})"
            if settings.smtp
            else f".eml files in {settings.outbox}"
        )
        log.warning("Airflow connection %r not found; delivering alerts through %s", conn_id, where)
        return fallback
    return mailer_from_connection(conn)
