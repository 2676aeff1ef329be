"""`S3Output`: outputs under `s3://bucket/prefix`, staged on the worker and uploaded file by file.

Staging lives in `<cache_dir>/staging/<sha256 of the URI>/`: `out/` is where the
pipeline writes (each file is removed once uploaded, or once its upload failed, so
the worker's disk never holds what the bucket lacks), and `remote/` mirrors the
bucket's `manifest/` (and the other folders the layout names) for the ledger. Manifest parts are immutable and uniquely
named, so the mirror downloads only parts it lacks and drops parts the bucket no
longer has. Every key goes through `S3Location.key`: nothing lands outside the prefix.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tasks.media.s3 import S3Access, as_os_error, boto_errors, parse_s3_uri, s3_client
from tasks.output.lease_s3 import S3LeaseObject
from tasks.output.transcripts import UnsafePathError, atomic_write_bytes, safe_relative_path
from tasks.settings import worker_settings

log = logging.getLogger(__name__)


def staging_folder(out: str) -> Path:
    return worker_settings().staging_dir / hashlib.sha256(out.encode("utf-8")).hexdigest()[:16]


class S3Output:
    def __init__(self, out: str, access: S3Access, mirrored: tuple[str, ...] = ()) -> None:
        self.mirrored = mirrored  # the folders readers of the ledger and metrics need (the layout's call)
        self.location = parse_s3_uri(out, "--out")
        self.uri = self.location.uri
        self._client = s3_client(access)
        self._root = staging_folder(self.uri) / "out"
        self._mirror = staging_folder(self.uri) / "remote"

    def local_root(self) -> Path:
        self._root.mkdir(parents=True, exist_ok=True)
        return self._root.resolve()

    def publish(self, paths: Iterable[Path], keep: bool = False) -> None:
        for path in paths:
            try:
                self._upload(path)
            finally:
                if not keep:
                    path.unlink(missing_ok=True)

    def delete(self, relative_paths: Iterable[str]) -> None:
        keys = [{"Key": self.location.key(relative)} for relative in relative_paths]
        for start in range(0, len(keys), 1000):  # the API's batch limit
            try:
                self._client.delete_objects(Bucket=self.location.bucket, Delete={"Objects": keys[start:start + 1000]})
            except boto_errors() as error:
                raise as_os_error(error, f"deleting merged parts under {self.uri}") from error

    def pull_manifest(self) -> Path:
        remote = self._remote_parts()
        for folder in (self._mirror / name for name in self.mirrored):
            for local in (p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else ():
                if local.relative_to(self._mirror).as_posix() not in remote:
                    local.unlink(missing_ok=True)
        for relative, size in remote.items():
            target = self._mirror / relative
            if not (target.is_file() and target.stat().st_size == size):
                atomic_write_bytes(target, self._get(self.location.prefix + relative))
        return self._mirror

    def fetch(self, relative: str) -> bytes:
        return self._get(self.location.key(relative))

    def lease_store(self, relative: str) -> S3LeaseObject:
        """The run lease as an object under the prefix, written with conditional puts."""
        return S3LeaseObject(self._client, self.location.bucket, self.location.key(relative))

    def _upload(self, path: Path) -> None:
        relative = self._relative(path.resolve())
        key = self.location.key(relative.as_posix())
        try:
            self._client.upload_file(str(path), self.location.bucket, key)
        except boto_errors() as error:
            raise as_os_error(error, f"upload to s3://{self.location.bucket}/{key}") from error

    def _relative(self, path: Path) -> Path:
        for root in (self.local_root(), self._mirror.resolve()):
            if path.is_relative_to(root):
                return path.relative_to(root)
        raise UnsafePathError(f"refusing to upload {path}: outside the staging folder")

    def _remote_parts(self) -> dict[str, int]:
        """Manifest, staged and stage-time files in the bucket: path under the prefix → size."""
        parts: dict[str, int] = {}
        for folder in self.mirrored:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.location.bucket, Prefix=f"{self.location.prefix}{folder}/"
            )
            try:
                for page in pages:
                    for obj in page.get("Contents", []):
                        relative = obj["Key"][len(self.location.prefix):]
                        if relative.endswith((".parquet", ".json")) and _is_safe(relative):
                            parts[relative] = int(obj["Size"])
            except boto_errors() as error:
                raise as_os_error(error, f"listing {self.uri}{folder}/") from error
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
