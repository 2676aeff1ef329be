"""`S3Output`: outputs under `s3://bucket/prefix`, staged on the worker and uploaded file by file.

Staging lives in `<cache_dir>/staging/<sha256 of the URI>/`: `out/` is where the
pipeline writes (each file is removed once uploaded, or once its upload failed, so
the worker's disk never holds what the bucket lacks), and `remote/` mirrors the
bucket's `manifest/` for the ledger. Manifest parts are immutable and uniquely
named, so the mirror downloads only parts it lacks and drops parts the bucket no
longer has. Every key goes through `S3Location.key`: nothing lands outside the prefix.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tasks.manifests import MANIFEST_DIR
from tasks.s3 import S3Access, as_os_error, boto_errors, parse_s3_uri, s3_client
from tasks.transcripts import UnsafePathError, atomic_write_bytes, safe_relative_path
from transcribe_all.settings import worker_settings

log = logging.getLogger(__name__)


def staging_folder(out: str) -> Path:
    return worker_settings().staging_dir / hashlib.sha256(out.encode("utf-8")).hexdigest()[:16]


class S3Output:
    def __init__(self, out: str, access: S3Access) -> None:
        self.location = parse_s3_uri(out, "--out")
        self.uri = self.location.uri
        self._client = s3_client(access)
        self._root = staging_folder(self.uri) / "out"
        self._mirror = staging_folder(self.uri) / "remote"

    def local_root(self) -> Path:
        self._root.mkdir(parents=True, exist_ok=True)
        return self._root.resolve()

    def publish(self, paths: Iterable[Path]) -> None:
        for path in paths:
            try:
                self._upload(path)
            finally:
                path.unlink(missing_ok=True)

    def pull_manifest(self) -> Path:
        remote = self._remote_parts()
        folder = self._mirror / MANIFEST_DIR
        for local in folder.rglob("*.parquet") if folder.is_dir() else ():
            if local.relative_to(self._mirror).as_posix() not in remote:
                local.unlink(missing_ok=True)
        for relative, size in remote.items():
            target = self._mirror / relative
            if not (target.is_file() and target.stat().st_size == size):
                atomic_write_bytes(target, self._get(self.location.prefix + relative))
        return self._mirror

    def _upload(self, path: Path) -> None:
        try:
            relative = path.resolve().relative_to(self.local_root())
        except ValueError as error:
            raise UnsafePathError(f"refusing to upload {path}: outside the staging folder") from error
        key = self.location.key(relative.as_posix())
        try:
            self._client.upload_file(str(path), self.location.bucket, key)
        except boto_errors() as error:
            raise as_os_error(error, f"upload to s3://{self.location.bucket}/{key}") from error

    def _remote_parts(self) -> dict[str, int]:
        """Manifest parts in the bucket: path relative to the prefix → size (unsafe keys skipped)."""
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.location.bucket, Prefix=f"{self.location.prefix}{MANIFEST_DIR}/"
        )
        parts: dict[str, int] = {}
        try:
            for page in pages:
                for obj in page.get("Contents", []):
                    relative = obj["Key"][len(self.location.prefix):]
                    if relative.endswith(".parquet") and _is_safe(relative):
                        parts[relative] = int(obj["Size"])
        except boto_errors() as error:
            raise as_os_error(error, f"listing {self.uri}{MANIFEST_DIR}/") from error
        return parts

    def _get(self, key: str) -> bytes:
        try:
            body: Any = self._client.get_object(Bucket=self.location.bucket, Key=key)["Body"]
            with body:
                return bytes(body.read())
        except boto_errors() as error:
            raise as_os_error(error, f"s3://{self.location.bucket}/{key}") from error


def _is_safe(relative: str) -> bool:
    try:
        safe_relative_path(relative)
    except UnsafePathError:
        log.warning("ignoring manifest object with an unsafe key: %r", relative)
        return False
    return True
