"""Configuration is data: one YAML file, validated when loaded.

Errors name the file, the line, the key and what is wrong; unknown keys are
errors (they are usually typos): see :mod:`pipeline.datafile`. Secrets never
live in the file: the SMTP password comes from ``NEWSMON_SMTP_PASSWORD`` or the file named by
``NEWSMON_SMTP_PASSWORD_FILE`` (or, under Airflow, the ``smtp_default``
connection).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, field_validator, model_validator

from pipeline import strict_yaml
from pipeline.datafile import Strict, Text, validate
from pipeline.http import FetchLimits, allow_entry_problem
from pipeline.ids import feed_key
from pipeline.signal.cluster import Options as ClusterOptions

DEFAULT_CONFIG = Path("newsmon.yaml")


class ConfigError(Exception):
    """The configuration file is missing, unreadable or invalid."""


def _http_url(value: str) -> str:
    problem = url_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


# Never part of a host name: RFC 3986's delimiters and what it leaves out of
# URIs altogether. A space is the usual one (`https://exa mple.org`): httpx
# would percent-encode it into a host no resolver knows, and the feed would
# fail on every pass with a DNS error instead of being refused once, here.
_NOT_IN_HOST = frozenset(' "%<>\\^`{|}')


def url_problem(value: str) -> str | None:
    """Why ``value`` is not a feed URL newsmon can poll, or None.

    Only the text is checked (scheme, host, port); where the host points is
    the address guard's business (``pipeline.http``).
    """
    if not value.isprintable():
        # urlsplit drops tabs and newlines (as browsers do); the stored URL would keep them.
        return f"{value!r} contains a control character"
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:  # "Port out of range 0-65535", "Invalid IPv6 URL"
        reason = str(exc)
        return f"{value!r} is not a valid URL: {reason[:1].lower()}{reason[1:]}"
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"must be an http:// or https:// URL, got {value!r}"
    host = parts.hostname or ""
    if not host:
        return f"{value!r} has no host"
    if port == 0:
        return f"{value!r}: port 0 is not a port a server listens on"
    bad = sorted({c for c in host if c in _NOT_IN_HOST or not c.isprintable()})
    if bad:
        return f"{value!r}: the host {host!r} contains {', '.join(map(repr, bad))}"
    if parts.netloc.startswith("[") or ":" in host:
        return None  # an IPv6 literal; urlsplit has parsed it
    try:
        host.encode("idna")  # empty labels ("a..b"), labels over 63 characters
    except UnicodeError:
        return f"{value!r}: {host!r} is not a valid host name"
    return None


def _query(value: str) -> str:
    # Imported here: the query package is only needed once a config is loaded.
    from pipeline.query import QuerySyntaxError, parse

    if not value.strip():
        raise ValueError("needs a query, not an empty string")
    try:
        parse(value)
    except QuerySyntaxError as exc:
        raise ValueError(str(exc)) from None
    return value


def _topic_name(name: str) -> str:
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ValueError(f"topic name {name!r} may use letters, digits, '-' and '_'")
    return name


Query = Annotated[str, AfterValidator(_query)]
"""A query in newsmon's query language (README, "Query language") that parses."""
TopicName = Annotated[str, AfterValidator(_topic_name)]
Topics = dict[TopicName, Query]
"""Topic name -> query: the config's ``topics`` and ``pipeline/data/topics.yaml``."""


class FeedConfig(Strict):
    url: str
    name: str | None = None

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _http_url(value)


class PersonConfig(Strict):
    name: Text
    aliases: tuple[Text, ...] = ()


# A plain ASCII address (RFC 5321 dot-atom @ host name): what every SMTP server
# takes without SMTPUTF8 and what a header holds as written. Tabs, line
# separators, quotes, comments and a second "@" once reached the server cut
# short (x@y<TAB>z as x@y) or as the null path, and a non-ASCII one stopped
# every send round at the server's refusal.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ADDRESS = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*")
_ADDRESS_RULE = ("a plain ASCII address such as name@example.org: no spaces, quotes, "
                 "comments or non-ASCII letters")


def plain_address(address: str) -> bool:
    return len(address) <= 254 and _ADDRESS.fullmatch(address) is not None


class AlertRule(Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    query: Query
    to: tuple[str, ...] = Field(min_length=1)
    mode: Literal["instant", "digest"] = "instant"
    period: Literal["hourly", "daily", "weekly"] | None = None
    languages: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    min_sources: int = Field(default=1, ge=1)
    updates: bool = False

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            if not plain_address(address):
                raise ValueError(f"{address!r} is not an e-mail address newsmon can send to "
                                 f"({_ADDRESS_RULE})")
        return value

    @field_validator("languages")
    @classmethod
    def _language_codes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # Stored languages are lower-case ISO 639-1 codes: "EN" would never match.
        return tuple(code.strip().lower() for code in value)

    @model_validator(mode="after")
    def _digest_needs_period(self) -> AlertRule:
        if self.mode == "digest" and self.period is None:
            raise ValueError("a digest rule needs 'period: hourly | daily | weekly'")
        return self


class SmtpConfig(Strict):
    url: str
    username: str | None = None
    sender: str = "newsmon <newsmon@localhost>"
    timeout: float = Field(default=30.0, gt=0)
    ca_file: Path | None = None  # a private CA for smtps:// and STARTTLS
    # Emails one send round claims at most (a digest is one email): a backlog
    # goes out in rounds one after the other, each short beside its lease.
    max_per_round: int = Field(default=100, ge=1, le=100_000)

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        _, address = parseaddr(value)
        if not plain_address(address) or any(not c.isprintable() for c in value):
            raise ValueError(f"{value!r} is not a sender newsmon can send as ({_ADDRESS_RULE},"
                             " with a printable name before it: 'newsmon <news@example.org>')")
        return value

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("smtp", "smtps", "smtp+starttls") or not parts.hostname:
            raise ValueError(
                "must look like smtp://host:port, smtps://host:port or smtp+starttls://host:port"
            )
        if parts.password:
            raise ValueError(
                "must not contain a password: set NEWSMON_SMTP_PASSWORD or "
                "NEWSMON_SMTP_PASSWORD_FILE instead"
            )
        return value

    def password(self, environ: Mapping[str, str] | None = None) -> str | None:
        env = os.environ if environ is None else environ
        if env.get("NEWSMON_SMTP_PASSWORD"):
            return env["NEWSMON_SMTP_PASSWORD"]
        path = env.get("NEWSMON_SMTP_PASSWORD_FILE")
        if path:
            return _password_file(path)
        return None


# A password, or a secret manager's file of one, is a few dozen bytes.
_MAX_PASSWORD_BYTES = 64 * 2**10


def _password_file(path: str) -> str:
    """The password in the file ``NEWSMON_SMTP_PASSWORD_FILE`` names; ConfigError
    when it cannot be read (it was a traceback: missing, a folder, not UTF-8;
    and /dev/zero never ended)."""
    name = f"NEWSMON_SMTP_PASSWORD_FILE={path}"
    try:
        with open(path, "rb") as handle:
            raw = handle.read(_MAX_PASSWORD_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read the SMTP password: {exc.strerror or exc}; "
                          "point it at the file that holds the password") from None
    if len(raw) > _MAX_PASSWORD_BYTES:
        raise ConfigError(f"{name}: larger than {_MAX_PASSWORD_BYTES // 2**10} KiB, not a file "
                          "that holds a password")
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"{name}: the password file is not UTF-8 text (save it as UTF-8)"
                          ) from None


# The fetcher's own defaults (pipeline.http.FetchLimits) are the config's: one
# definition, so `newsmon extract` and a pass fetch with the same limits.
_LIMITS = FetchLimits()


class FetchConfig(Strict):
    allow_private: tuple[str, ...] = ()

    @field_validator("allow_private")
    @classmethod
    def _allow_entries(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            problem = allow_entry_problem(entry)
            if problem is not None:
                raise ValueError(problem)
        return tuple(entry.strip() for entry in value)

    # A whole request, body included (20 s as Miniflux): a server trickling
    # its bytes holds one request that long at most.
    timeout: float = Field(default=_LIMITS.total_timeout, gt=0)
    connect_timeout: float = Field(default=_LIMITS.connect_timeout, gt=0)
    read_timeout: float = Field(default=_LIMITS.read_timeout, gt=0)
    max_feed_bytes: int = Field(default=_LIMITS.max_feed_bytes, gt=0)
    max_page_bytes: int = Field(default=_LIMITS.max_page_bytes, gt=0)
    max_redirects: int = Field(default=_LIMITS.max_redirects, ge=0)
    max_url_length: int = Field(default=_LIMITS.max_url_length, gt=0)
    concurrency: int = Field(default=_LIMITS.global_concurrency, ge=1)
    per_host_concurrency: int = Field(default=_LIMITS.per_host_concurrency, ge=1)
    host_spacing: float = Field(default=_LIMITS.host_spacing, ge=0)
    max_entries_per_feed: int = Field(default=200, ge=1)
    # feedparser has no time limit of its own (see pipeline.workers).
    parse_timeout: float = Field(default=20.0, gt=0)
    # Feeds and pages not done within this many seconds of a pass (or of a
    # stage, when Airflow runs the stages as tasks) wait for the next one.
    pass_budget_seconds: float = Field(default=600.0, gt=0)
    # A pipelined pass gives each host this long from its first page request:
    # its pages still queued then (behind a slow server's own) wait for the next
    # poll, and the rest of the pass does not wait for them.
    host_budget_seconds: float = Field(default=120.0, gt=0)

    def limits(self) -> FetchLimits:
        """These settings as the fetcher's limits."""
        return FetchLimits(
            max_feed_bytes=self.max_feed_bytes, max_page_bytes=self.max_page_bytes,
            connect_timeout=self.connect_timeout, read_timeout=self.read_timeout,
            total_timeout=self.timeout, max_redirects=self.max_redirects,
            max_url_length=self.max_url_length, global_concurrency=self.concurrency,
            per_host_concurrency=self.per_host_concurrency, host_spacing=self.host_spacing,
            allow_private=frozenset(self.allow_private),
        )


class PollConfig(Strict):
    interval_minutes: float = Field(default=15.0, gt=0)
    min_interval_minutes: float = Field(default=5.0, gt=0)
    max_interval_minutes: float = Field(default=24 * 60.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> PollConfig:
        if self.min_interval_minutes > self.max_interval_minutes:
            raise ValueError("min_interval_minutes is larger than max_interval_minutes")
        return self


# The clusterer's defaults (pipeline.signal.cluster.Options), in the config's units.
_CLUSTER = ClusterOptions()
_HOUR, _DAY = timedelta(hours=1), timedelta(days=1)


class ClusterConfig(Strict):
    # A story takes a new report up to horizon_hours after its last one (the
    # seeds' reports come up to four days apart; rare_reach times as long for a
    # same-language report sharing a rare word) and never more than
    # max_span_days after its first; the score halves every half_life_hours of gap.
    horizon_hours: float = Field(default=_CLUSTER.horizon / _HOUR, gt=0, le=24 * 90)
    # The reach is what a plan reads and the clusterer holds: memory and restore
    # time grow with it (3 holds three times the stories of 1).
    rare_reach: float = Field(default=_CLUSTER.rare_reach, ge=1, le=10)
    half_life_hours: float = Field(default=_CLUSTER.half_life / _HOUR, gt=0)
    max_span_days: float = Field(default=_CLUSTER.max_span / _DAY, gt=0, le=365)
    threshold: float = Field(default=_CLUSTER.threshold, gt=0, le=1)
    # The multilingual sentence encoder (pipeline/signal/embed.py): the only way a report
    # in another language joins a story (within one language it is not used:
    # different shootings are as close in it as two reports of one); off, a
    # report never joins a story in another language.
    embeddings: bool = True

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        # A config written for the 72-hour window: say what replaced it, not "a typo?".
        if isinstance(data, dict) and "window_hours" in data:
            raise ValueError("window_hours was replaced by horizon_hours (hours after a "
                             "story's last report during which it takes new ones; default 168)")
        return data

    def options(self) -> ClusterOptions:
        return ClusterOptions(horizon=timedelta(hours=self.horizon_hours),
                              half_life=timedelta(hours=self.half_life_hours),
                              max_span=timedelta(days=self.max_span_days),
                              threshold=self.threshold, rare_reach=self.rare_reach)


# Each worker is a whole process with its own trafilatura and language detector:
# a thousand is a typo (or a fork bomb), not a setting.
MAX_WORKERS = 256


class ProcessConfig(Strict):
    workers: int = Field(default=0, ge=0, le=MAX_WORKERS)  # 0: one per core
    batch_size: int = Field(default=200, ge=1)
    # trafilatura has no time limit of its own; a page over it is rejected.
    extract_timeout: float = Field(default=30.0, gt=0)


class S3Config(Strict):
    """Where an S3-compatible store answers; the keys come from the environment
    (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``), never from the file."""

    endpoint: str | None = None  # host:port of an S3-compatible store; None: AWS
    region: str = "us-east-1"
    use_ssl: bool = True
    url_style: Literal["path", "vhost"] = "path"


class StoreConfig(Strict):
    """Where the tables live (pipeline.store.backend): ``file`` (the DuckDB file
    at ``database``, the default) or ``lake`` (DuckLake: catalog in PostgreSQL,
    data files on S3 or a shared path, staging there too)."""

    mode: Literal["file", "lake"] = "file"
    # A libpq DSN of the catalog database, without a password: it comes from
    # PGPASSWORD (or ~/.pgpass), as for psql.
    catalog: str | None = None
    data_path: str | None = None  # s3://bucket/prefix/ or a folder every host mounts
    # The runs' staging folders, reachable from every host: s3://bucket/prefix/
    # (each host keeps a local copy under staging_dir) or a shared folder.
    staging_url: str | None = None
    s3: S3Config = S3Config()

    @field_validator("catalog")
    @classmethod
    def _no_password(cls, value: str | None) -> str | None:
        if value is not None and re.search(r"(^|\s)password\s*=", value):
            raise ValueError("must not contain a password: set PGPASSWORD (or use ~/.pgpass)")
        return value

    @model_validator(mode="after")
    def _lake_needs(self) -> StoreConfig:
        if self.mode == "lake":
            missing = [k for k in ("catalog", "data_path") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"mode lake needs {' and '.join(missing)} "
                                 "(see README, Scaling out)")
        for key in ("data_path", "staging_url"):
            value = getattr(self, key)
            if value is not None and "://" in value and not value.startswith("s3://"):
                raise ValueError(f"{key}: must be an s3:// URL or a folder, got {value!r}")
        return self


class StreamConfig(Strict):
    # The pipelined pass (pipeline/stream.py) loads and alerts finished articles
    # in micro-batches: this many articles, or this many seconds after the
    # batch's first record, whichever comes first.
    batch_articles: int = Field(default=50, ge=1)
    batch_seconds: float = Field(default=2.0, gt=0)


class Settings(Strict):
    """Everything newsmon needs, loaded once and passed explicitly."""

    database: Path = Path("news.duckdb")
    staging_dir: Path | None = None  # default: <database dir>/staging
    outbox_dir: Path | None = None  # default: <database dir>/outbox (when smtp is absent)
    feeds: tuple[FeedConfig, ...] = ()
    topics: Topics = Field(default_factory=dict)
    default_topics: bool = True
    people: tuple[PersonConfig, ...] = ()
    alerts: tuple[AlertRule, ...] = ()
    smtp: SmtpConfig | None = None
    fetch: FetchConfig = FetchConfig()
    poll: PollConfig = PollConfig()
    cluster: ClusterConfig = ClusterConfig()
    process: ProcessConfig = ProcessConfig()
    stream: StreamConfig = StreamConfig()
    retention_days: Annotated[int, Field(ge=1)] | None = None
    store: StoreConfig = StoreConfig()

    @model_validator(mode="after")
    def _unique_names(self) -> Settings:
        first: dict[str, str] = {}
        for feed in self.feeds:
            key = feed_key(feed.url)
            if key not in first:
                first[key] = feed.url
            elif first[key] == feed.url:
                raise ValueError(f"feeds: duplicate url {feed.url!r}")
            else:
                raise ValueError(f"feeds: {feed.url!r} is the same feed as {first[key]!r} "
                                 "(written another way); keep one")
        names = [a.name for a in self.alerts]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"alerts: duplicate rule name {dupes[0]!r}")
        return self

    @model_validator(mode="after")
    def _staging_outside_the_lake(self) -> Settings:
        # Relative folders are checked by parse_settings, once they are
        # resolved against the config file's folder.
        problem = staging_in_data_path(self, relative=False)
        if problem:
            raise ValueError(problem)
        return self

    @property
    def staging(self) -> Path:
        shared = self.store.staging_url
        if shared is not None and "://" not in shared:
            return Path(shared)  # a folder every host mounts (lake mode)
        return self.staging_dir or self.database.parent / "staging"

    @property
    def outbox(self) -> Path:
        return self.outbox_dir or self.database.parent / "outbox"

    def resolved(self, base: Path) -> Settings:
        """Relative paths in a config file are relative to the file's folder;
        ``~`` and ``~user`` are the home folder, as in a shell."""

        def fix(p: Path | None) -> Path | None:
            if p is None:
                return None
            # Taken as written, `database: ~/news/news.duckdb` made a folder
            # named "~" beside the config file (and `rm -rf ~` is what a user
            # types to remove it).
            p = _home(p)
            return p if p.is_absolute() else base / p

        updates: dict[str, Any] = {
            "database": fix(self.database) or self.database,
            "staging_dir": fix(self.staging_dir) or self.staging_dir,
            "outbox_dir": fix(self.outbox_dir) or self.outbox_dir,
        }
        if self.smtp is not None and self.smtp.ca_file is not None:
            updates["smtp"] = self.smtp.model_copy(
                update={"ca_file": fix(self.smtp.ca_file) or self.smtp.ca_file})
        return self.model_copy(update=updates)


def _home(path: Path) -> Path:
    """``path`` with a leading ``~`` or ``~user`` expanded; as written when
    there is no such home (a ``~`` that is a folder's real name, then)."""
    try:
        return path.expanduser()
    except RuntimeError:  # "Could not determine home directory"
        return path


def _folder_or_url(value: str | Path) -> str:
    """``value`` as a prefix to compare: an s3:// URL with one trailing slash,
    or an absolute folder (symlinks resolved as far as they exist) with one."""
    text = str(value)
    if text.startswith("s3://"):
        return text.rstrip("/") + "/"
    return str(Path(os.path.abspath(text)).resolve()).rstrip("/") + "/"


def staging_in_data_path(settings: Settings, *, relative: bool = True) -> str | None:
    """The sentence refusing a lake whose data path holds a staging folder (or
    sits inside one), None when they are apart. DuckLake's orphan deletion
    (``newsmon compact``) deletes every file under ``store.data_path`` its
    catalog does not list, a staged run's too, and the staging's pruning
    removes folders under it, the lake's too. ``relative`` False: skip the
    folders given relative (a config file's are checked once resolved)."""
    store = settings.store
    if store.mode != "lake" or store.data_path is None:
        return None
    stagings: list[tuple[str, str | Path]] = []
    if store.staging_url is not None:
        stagings.append(("store.staging_url", store.staging_url))
    if store.staging_url is None or store.staging_url.startswith("s3://"):
        # Each host's staging folder (its copies of a shared S3 staging).
        local = settings.staging_dir or settings.database.parent / "staging"
        stagings.append(("staging_dir", local))
    if not relative and not store.data_path.startswith("s3://") and \
            not Path(store.data_path).is_absolute():
        return None
    lake = _folder_or_url(store.data_path)
    for key, folder in stagings:
        if not relative and not str(folder).startswith("s3://") and \
                not Path(folder).is_absolute():
            continue
        staging = _folder_or_url(folder)
        if staging.startswith(lake):
            return (f"{key} ({folder}) is inside store.data_path ({store.data_path}), where "
                    "the lake's compaction deletes every file its catalog does not list (a "
                    f"staged run's too): give {key} a folder outside store.data_path")
        if lake.startswith(staging):
            return (f"store.data_path ({store.data_path}) is inside {key} ({folder}), where "
                    "the staging's clean-up removes the folders it takes for old runs (the "
                    "lake's too): give store.data_path a folder outside the staging")
    return None


def unknown_topic(query: str, settings: Settings) -> str | None:
    """Why the alert rule ``query`` names a topic no new article can carry, or
    None. Only the config's topics and (with ``default_topics``) the shipped
    ones tag articles, so a rule's ``topic:syira`` never fired, without a word."""
    from difflib import get_close_matches

    from pipeline.query import facets, fold, parse
    from pipeline.signal.tag import topic_queries

    names = sorted(topic_queries(settings))
    known = {fold(n): n for n in names} | {n.lower(): n for n in names}
    named = [(f.value, f.prefix) for f in facets(parse(query)) if f.field == "topic"]
    for value, prefix in named:
        if any(k.startswith(value) for k in known) if prefix else value in known:
            continue
        close = get_close_matches(value, list(known), n=1)
        guess = f"did you mean topic:{known[close[0]]}? " if close else ""
        shown = f"topic:{value}*" if prefix else f"topic:{value}"
        if not names:
            return (f"{shown}: there are no topics (default_topics is false and `topics:` is"
                    " empty), so the rule would never fire; add the topic under `topics:`")
        return (f"{shown}: no topic is named so, so the rule would never fire; {guess}"
                f"the topics are {', '.join(names)} (the config's `topics:`"
                + (" and the shipped ones)" if settings.default_topics else
                   "; default_topics is false)"))
    return None


def parse_settings(data: object, *, source: str = "<config>", base: Path | None = None,
                   lines: strict_yaml.Lines | None = None) -> Settings:
    """Validate already-parsed YAML data; raise ConfigError naming key and problem
    (and its line, given the ``lines`` of the document)."""
    settings = validate(Settings, {} if data is None else data, origin=source,
                        error=ConfigError, lines=lines)
    for i, rule in enumerate(settings.alerts):
        problem = unknown_topic(rule.query, settings)
        if problem is not None:
            line = lines.line(("alerts", i, "query")) if lines is not None else None
            where = f"line {line}: " if line is not None else ""
            raise ConfigError(f"{source}: {where}alerts[{i}].query: {problem}")
    if base is None:
        return settings
    settings = settings.resolved(base)
    problem = staging_in_data_path(settings)
    if problem:
        raise ConfigError(f"{source}: {problem}")
    return settings


def load_settings(path: Path | str | None = None) -> Settings:
    """Load and validate the YAML file (default ``./newsmon.yaml``)."""
    file = Path(path) if path is not None else DEFAULT_CONFIG
    hint = "" if path is not None else " (pass --config PATH, or create newsmon.yaml)"
    return settings_from(read_config(file, hint=hint), file)


# 10,000 feeds take 340 KiB. Past this it is the wrong file (`--config` naming
# a log, a disk image, /dev/zero), which was read whole into memory, or never
# finished; a 3.5 MB file of 100,000 feeds took 13 s to validate.
MAX_CONFIG_BYTES = 4 * 2**20


def read_config(file: Path, *, hint: str = "") -> bytes:
    """The config file's bytes; ConfigError naming it when it cannot be read."""
    try:
        with file.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{file}: config file not found{hint}") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read config file: {exc.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{file}: larger than {MAX_CONFIG_BYTES // 2**20} MiB, more than a "
                          "config file holds: is it the right file? (feeds by the thousand go "
                          "in the database: `newsmon feeds import FILE.opml`)")
    return raw


def settings_from(raw: bytes, file: Path) -> Settings:
    """The settings in ``raw``, the bytes of ``file`` (its name is in each
    error; :func:`config_folder` is where relative paths start)."""
    try:
        data, lines = strict_yaml.load_with_lines(strict_yaml.decode(raw))
    except strict_yaml.StrictYamlError as exc:
        raise ConfigError(f"{file}: {exc}") from None
    return parse_settings(data, source=str(file), base=config_folder(file), lines=lines)


def config_folder(file: Path) -> Path:
    """Where a config file's relative paths start: the folder the file is named
    in, a symlink's own folder and not its target's. A user sees ``news.duckdb``
    beside the ``newsmon.yaml`` they named; a config linked in from a dotfiles
    checkout put the database in that checkout, and a Kubernetes ConfigMap
    (``newsmon.yaml -> ..data/newsmon.yaml -> ..2026_12_07.../newsmon.yaml``)
    in a read-only folder that is replaced at each update. The folder itself is
    resolved as the kernel resolves it when a file in it is opened."""
    return file.absolute().parent.resolve()
