"""Staging every host can reach: a copy of each run folder on S3.

With ``store.staging_url: s3://bucket/prefix/`` each stage still writes and
reads its run folder under the local ``staging_dir`` (so
:mod:`pipeline.store.staging` and its completion records work unchanged), and:

- a producer that finished a shard (:func:`push`) uploads the shard's files,
  then its completion record, last: a record on S3 vouches for files that are
  there whole;
- each stage works in a folder of its own (:func:`workspace`), holding the
  S3 copy of the run folder (two tasks on one host never share one). No copy
  on S3 leaves no local folder either, so :func:`pipeline.store.staging.verify`
  says the folder is missing: an error, never an empty run. A copy cut short
  fails its checksums there, too.

With ``staging_url`` a folder (every host mounts it), that folder is the
staging folder itself (``Settings.staging``) and nothing is copied; without
``staging_url`` the staging stays on this host, as in file mode.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.store import staging

if TYPE_CHECKING:
    from pipeline.config import Settings

_DONE = ".done.json"


def _s3_url(settings: Settings) -> str | None:
    url = settings.store.staging_url
    return url if url and url.startswith("s3://") else None


def _client(settings: Settings) -> Any:
    import boto3

    s3 = settings.store.s3
    endpoint = None
    if s3.endpoint:
        endpoint = f"{'https' if s3.use_ssl else 'http'}://{s3.endpoint}"
    return boto3.client("s3", endpoint_url=endpoint, region_name=s3.region)


def _where(url: str, run_id: str) -> tuple[str, str]:
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/{run_id}/" if prefix else f"{run_id}/"


def _failed(url: str, exc: Exception) -> staging.StagingError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return staging.StagingError(
        f"{url}: the shared staging cannot be reached ({first}); check store.staging_url, "
        "the S3 settings and keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), and run the "
        "stage again")


@contextmanager
def workspace(settings: Settings, run_id: str, *, pull: bool = True) -> Iterator[Settings]:
    """The settings a stage works with. With staging on S3: its own local
    folder (so two tasks on one host never share one), holding the S3 copy of
    the run folder when ``pull``, removed after; otherwise ``settings``."""
    if _s3_url(settings) is None:
        yield settings
        return
    settings.staging.mkdir(parents=True, exist_ok=True)
    private = Path(tempfile.mkdtemp(prefix=".task-", dir=settings.staging))
    try:
        local = settings.model_copy(update={"staging_dir": private})
        if pull:
            _pull(local, run_id)
        yield local
    finally:
        shutil.rmtree(private, ignore_errors=True)


def replace(settings: Settings, run_id: str, shard: str) -> None:
    """Make ``shard`` the only one of ``run_id`` on S3 (the poll: a re-run
    starts the run over)."""
    discard(settings, run_id)
    push(settings, run_id, shard)


def push(settings: Settings, run_id: str, shard: str) -> None:
    """Upload one finished shard of ``run_id`` (its files, then its completion
    record); nothing without an S3 staging URL."""
    url = _s3_url(settings)
    if url is None:
        return
    from botocore.exceptions import BotoCoreError, ClientError

    directory = staging.run_dir(settings.staging, run_id)
    record = directory / f"{shard}{_DONE}"
    listed = json.loads(record.read_text(encoding="utf-8")).get("files", {})
    bucket, prefix = _where(url, run_id)
    try:
        client = _client(settings)
        for name in sorted(listed):
            client.upload_file(str(directory / name), bucket, prefix + name)
        client.upload_file(str(record), bucket, prefix + record.name)
    except (BotoCoreError, ClientError) as exc:
        raise _failed(url, exc) from None


def _pull(settings: Settings, run_id: str) -> None:
    """Download the S3 copy of ``run_id`` into the (empty) local staging; none
    there leaves no local folder."""
    url = _s3_url(settings)
    assert url is not None
    from botocore.exceptions import BotoCoreError, ClientError

    directory = staging.run_dir(settings.staging, run_id)
    bucket, prefix = _where(url, run_id)
    tmp = directory.with_name(f".{run_id}.pull")
    try:
        client = _client(settings)
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                      Prefix=prefix):
            for item in page.get("Contents", ()):
                name = item["Key"][len(prefix):]
                if not name or "/" in name:
                    continue
                tmp.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket, item["Key"], str(tmp / name))
    except (BotoCoreError, ClientError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _failed(url, exc) from None
    if tmp.is_dir():
        tmp.rename(directory)


def discard(settings: Settings, run_id: str) -> None:
    """Delete the S3 copy of ``run_id`` (loaded, or polled again from scratch)."""
    url = _s3_url(settings)
    if url is None:
        return
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = _where(url, run_id)
    try:
        client = _client(settings)
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                      Prefix=prefix):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", ())]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
    except (BotoCoreError, ClientError) as exc:
        raise _failed(url, exc) from None

