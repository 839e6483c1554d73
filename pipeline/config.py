"""Configuration is data: one YAML file, validated when loaded.

Errors name the file, the key and what is wrong; unknown keys are errors
(they are usually typos). Secrets never live in the file: the SMTP password
comes from ``NEWSMON_SMTP_PASSWORD`` or the file named by
``NEWSMON_SMTP_PASSWORD_FILE`` (or, under Airflow, the ``smtp_default``
connection).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline import strict_yaml
from pipeline.signal.cluster import Options as ClusterOptions

DEFAULT_CONFIG = Path("newsmon.yaml")


class ConfigError(Exception):
    """The configuration file is missing, unreadable or invalid."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class FeedConfig(_Model):
    url: str
    name: str | None = None

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _http_url(value)


class PersonConfig(_Model):
    name: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()


class AlertRule(_Model):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    query: str = Field(min_length=1)
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
            local, _, domain = address.partition("@")
            if not local or not domain or any(c in address for c in " \r\n<>,;"):
                raise ValueError(f"{address!r} is not an e-mail address")
        return value

    @model_validator(mode="after")
    def _digest_needs_period(self) -> AlertRule:
        if self.mode == "digest" and self.period is None:
            raise ValueError("a digest rule needs 'period: hourly | daily | weekly'")
        return self


class SmtpConfig(_Model):
    url: str
    username: str | None = None
    sender: str = "newsmon <newsmon@localhost>"
    timeout: float = Field(default=30.0, gt=0)
    ca_file: Path | None = None  # a private CA for smtps:// and STARTTLS

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
            return Path(path).read_text(encoding="utf-8").strip()
        return None


class FetchConfig(_Model):
    allow_private: tuple[str, ...] = ()
    timeout: float = Field(default=60.0, gt=0)
    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=20.0, gt=0)
    max_feed_bytes: int = Field(default=5 * 2**20, gt=0)
    max_page_bytes: int = Field(default=10 * 2**20, gt=0)
    max_redirects: int = Field(default=5, ge=0)
    max_url_length: int = Field(default=2048, gt=0)
    # In flight at once, over all hosts (each host: per_host_concurrency). With a
    # network's 50 ms, 64 checked 1,000 unchanged feeds in 1.4 s against 2.0 s
    # with 32 (benchmarks/polling.py); beyond that a pass is CPU-bound on 2 cores.
    concurrency: int = Field(default=64, ge=1)
    per_host_concurrency: int = Field(default=2, ge=1)
    host_spacing: float = Field(default=0.0, ge=0)
    max_entries_per_feed: int = Field(default=200, ge=1)
    # feedparser has no time limit of its own (see pipeline.workers).
    parse_timeout: float = Field(default=20.0, gt=0)
    # Feeds and pages not done within this many seconds of a pass (or of a
    # stage, when Airflow runs the stages as tasks) wait for the next one.
    pass_budget_seconds: float = Field(default=600.0, gt=0)


class PollConfig(_Model):
    interval_minutes: float = Field(default=15.0, gt=0)
    min_interval_minutes: float = Field(default=5.0, gt=0)
    max_interval_minutes: float = Field(default=24 * 60.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> PollConfig:
        if self.min_interval_minutes > self.max_interval_minutes:
            raise ValueError("min_interval_minutes is larger than max_interval_minutes")
        return self


class ClusterConfig(_Model):
    # A story takes a new report up to horizon_hours after its last one (the
    # seeds' reports come up to four days apart) and never more than
    # max_span_days after its first; the score halves every half_life_hours of gap.
    horizon_hours: float = Field(default=168.0, gt=0, le=24 * 90)
    half_life_hours: float = Field(default=168.0, gt=0)
    max_span_days: float = Field(default=30.0, gt=0, le=365)
    threshold: float = Field(default=0.285, gt=0, le=1)
    # The multilingual sentence encoder (pipeline/embed.py): the only way a report
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
                              threshold=self.threshold)


# Each worker is a whole process with its own trafilatura and language detector:
# a thousand is a typo (or a fork bomb), not a setting.
MAX_WORKERS = 256


class ProcessConfig(_Model):
    workers: int = Field(default=0, ge=0, le=MAX_WORKERS)  # 0: one per core
    batch_size: int = Field(default=200, ge=1)
    # trafilatura has no time limit of its own; a page over it is rejected.
    extract_timeout: float = Field(default=30.0, gt=0)


class Settings(_Model):
    """Everything newsmon needs, loaded once and passed explicitly."""

    database: Path = Path("news.duckdb")
    staging_dir: Path | None = None  # default: <database dir>/staging
    outbox_dir: Path | None = None  # default: <database dir>/outbox (when smtp is absent)
    feeds: tuple[FeedConfig, ...] = ()
    topics: dict[str, str] = Field(default_factory=dict)
    default_topics: bool = True
    people: tuple[PersonConfig, ...] = ()
    alerts: tuple[AlertRule, ...] = ()
    smtp: SmtpConfig | None = None
    fetch: FetchConfig = FetchConfig()
    poll: PollConfig = PollConfig()
    cluster: ClusterConfig = ClusterConfig()
    process: ProcessConfig = ProcessConfig()
    retention_days: Annotated[int, Field(ge=1)] | None = None

    @field_validator("topics")
    @classmethod
    def _topic_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, query in value.items():
            if not name or not all(c.isalnum() or c in "-_" for c in name):
                raise ValueError(f"topic name {name!r} may use letters, digits, '-' and '_'")
            if not isinstance(query, str) or not query.strip():
                raise ValueError(f"topic {name!r} needs a query string")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> Settings:
        urls = [f.url for f in self.feeds]
        dupes = sorted({u for u in urls if urls.count(u) > 1})
        if dupes:
            raise ValueError(f"feeds: duplicate url {dupes[0]!r}")
        names = [a.name for a in self.alerts]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"alerts: duplicate rule name {dupes[0]!r}")
        return self

    @property
    def staging(self) -> Path:
        return self.staging_dir or self.database.parent / "staging"

    @property
    def outbox(self) -> Path:
        return self.outbox_dir or self.database.parent / "outbox"

    def resolved(self, base: Path) -> Settings:
        """Relative paths in a config file are relative to the file's folder."""

        def fix(p: Path | None) -> Path | None:
            return None if p is None or p.is_absolute() else base / p

        updates: dict[str, Any] = {
            "database": fix(self.database) or self.database,
            "staging_dir": fix(self.staging_dir) or self.staging_dir,
            "outbox_dir": fix(self.outbox_dir) or self.outbox_dir,
        }
        return self.model_copy(update=updates)


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _describe(error: ValidationError, source: str) -> str:
    lines = []
    for item in error.errors():
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (a typo?)"
        lines.append(f"{source}: {_location(tuple(item['loc']))}: {message}")
    return "\n".join(lines)


def parse_settings(data: object, *, source: str = "<config>", base: Path | None = None) -> Settings:
    """Validate already-parsed YAML data; raise ConfigError naming key and problem."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level")
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None
    _check_queries(settings, source)
    return settings.resolved(base) if base is not None else settings


def _check_queries(settings: Settings, source: str) -> None:
    # Imported here: the query package is only needed once a config is loaded.
    from pipeline.query import QuerySyntaxError, parse

    checks = [(f"topics.{n}", q) for n, q in settings.topics.items()]
    checks += [(f"alerts[{i}].query", a.query) for i, a in enumerate(settings.alerts)]
    for where, query in checks:
        try:
            parse(query)
        except QuerySyntaxError as exc:
            raise ConfigError(f"{source}: {where}: {exc}") from None


def load_settings(path: Path | str | None = None) -> Settings:
    """Load and validate the YAML file (default ``./newsmon.yaml``)."""
    file = Path(path) if path is not None else DEFAULT_CONFIG
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        hint = "" if path is not None else " (pass --config PATH, or create newsmon.yaml)"
        raise ConfigError(f"{file}: config file not found{hint}") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read config file: {exc.strerror}") from None
    try:
        data = strict_yaml.load(strict_yaml.decode(raw))
    except strict_yaml.StrictYamlError as exc:
        raise ConfigError(f"{file}: {exc}") from None
    return parse_settings(data, source=str(file), base=file.resolve().parent)
