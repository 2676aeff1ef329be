"""Reaching S3: parse `s3://bucket/prefix`, build a client, turn boto errors into OSError.

boto3 and prefect-aws are the `aws` extra, so they are imported here and only when
an `s3://` URI is used. Credentials come from a saved prefect-aws `AwsCredentials`
block (by name) or boto3's default chain; `S3Access` holds only names and the
endpoint, never a secret, so it is safe to pass around, log and hash.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tasks.output.transcripts import UnsafePathError, safe_relative_path

SCHEME = "s3://"


@dataclass(frozen=True, slots=True)
class S3Location:
    bucket: str
    prefix: str  # "" or ends with "/"

    @property
    def uri(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.prefix}"

    def key(self, relative: str) -> str:
        """The object key of a path relative to the prefix; never outside it."""
        return self.prefix + safe_relative_path(relative).as_posix()


def is_s3(uri: str) -> bool:
    return uri.startswith(SCHEME)


def parse_s3_uri(uri: str, parameter: str) -> S3Location:
    """`s3://bucket/some/prefix` → S3Location; a one-line error naming the parameter otherwise."""
    if not is_s3(uri):
        raise ValueError(f"{parameter}: not an s3:// URI: {uri}")
    bucket, _, prefix = uri[len(SCHEME):].partition("/")
    if not bucket or "\\" in bucket or any(ord(ch) < 32 for ch in bucket):
        raise ValueError(f"{parameter}: no bucket name in {uri!r}; use s3://BUCKET/PREFIX")
    prefix = prefix.strip("/")
    if prefix:
        try:
            safe_relative_path(prefix)
        except UnsafePathError as error:
            reason = "'..', '.', '//' or control characters"
            raise ValueError(f"{parameter}: unsafe prefix in {uri!r} ({reason})") from error
    return S3Location(bucket, f"{prefix}/" if prefix else "")


@dataclass(frozen=True, slots=True)
class S3Access:
    """How this worker reaches S3: a credentials block name (or the default chain) and an endpoint."""

    credentials_block: str | None = None
    endpoint_url: str | None = None

    @classmethod
    def from_settings(cls) -> S3Access:
        from tasks.settings import worker_settings

        settings = worker_settings()
        return cls(settings.aws_credentials_block, settings.s3_endpoint_url)


def require_aws() -> None:
    """Fail early, naming the extra, when boto3 or prefect-aws is missing (without importing them)."""
    missing = [name for name in ("boto3", "prefect_aws") if importlib.util.find_spec(name) is None]
    if missing:
        raise RuntimeError(
            f"s3:// sources and outputs need the aws extra ({', '.join(missing)} missing):"
            " pip install 'transcribe-all[aws]'"
        )


@lru_cache(maxsize=8)
def s3_client(access: S3Access) -> Any:
    """A boto3 S3 client (thread-safe, so cached per process and shared by the decode threads)."""
    require_aws()
    if access.credentials_block is None:
        import boto3

        return boto3.session.Session().client("s3", endpoint_url=access.endpoint_url)
    from prefect_aws import AwsCredentials

    try:
        credentials = AwsCredentials.load(access.credentials_block)
    except ValueError as error:
        raise RuntimeError(
            f"AWS credentials block {access.credentials_block!r} not found: save an AwsCredentials block"
            " of that name, or name another (TRANSCRIBE_ALL_AWS_CREDENTIALS_BLOCK or the MediaLibrary block)"
        ) from error
    params = credentials.aws_client_parameters.get_params_override()
    if access.endpoint_url:
        params["endpoint_url"] = access.endpoint_url
    if credentials.region_name:
        params["region_name"] = credentials.region_name
    return credentials.get_boto3_session().client("s3", **params)


def as_os_error(error: Exception, location: str) -> OSError:
    """botocore errors carry no errno: wrap them so callers that isolate I/O failures catch them."""
    return OSError(f"{location}: {error}")


def boto_errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)
