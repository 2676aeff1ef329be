"""Where a run's outputs live: `OutputStore`, for a local DIR or an `s3://bucket/prefix`.

The pipeline always writes to a local folder (atomic temp file + rename, Parquet,
JSON…); the store says which folder, and ships what was written. For a local DIR
that folder is DIR and shipping does nothing. For S3 it is a staging folder on the
worker: each file is uploaded right after it is written, then removed, and the
remote manifest is mirrored locally before anything reads the ledger. Keeping the
data path local means the manifest, transcript and metrics code knows nothing of S3.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from tasks.locations import location_kind
from tasks.output.lease import LeaseStore, LocalLeaseFile
from tasks.output.transcripts import safe_relative_path


class OutputStore(Protocol):
    uri: str

    def local_root(self) -> Path:
        """The folder the pipeline writes into (created)."""
        ...

    def publish(self, paths: Iterable[Path], keep: bool = False) -> None:
        """Ship files just written under `local_root()` or the mirror to the output (a no-op locally).

        Shipped copies are removed from the worker unless `keep` (a merged part stays mirrored).
        """
        ...

    def delete(self, relative_paths: Iterable[str]) -> None:
        """Remove files from the output (staged parts folded into a merge); a no-op locally."""
        ...

    def pull_manifest(self) -> Path:
        """A local root holding the output's `manifest/`, `_staging/` and `_stages/`, for reading."""
        ...

    def fetch(self, relative: str) -> bytes:
        """The bytes of one file of the output (e.g. a shard's file list)."""
        ...

    def lease_store(self, relative: str) -> LeaseStore:
        """Compare-and-swap storage for the run lease at `relative` (tasks/output/lease.py)."""
        ...


class LocalOutput:
    """DIR on this machine's disk: written in place."""

    def __init__(self, out: str) -> None:
        self.uri = out
        self._root = Path(out).resolve()

    def local_root(self) -> Path:
        self._root.mkdir(parents=True, exist_ok=True)
        return self._root

    def publish(self, paths: Iterable[Path], keep: bool = False) -> None:
        return None

    def delete(self, relative_paths: Iterable[str]) -> None:
        return None  # the merge already removed the local files

    def pull_manifest(self) -> Path:
        return self._root

    def fetch(self, relative: str) -> bytes:
        return (self._root / safe_relative_path(relative)).read_bytes()

    def lease_store(self, relative: str) -> LeaseStore:
        return LocalLeaseFile(self._root / safe_relative_path(relative))


def open_output(out: str, mirrored: tuple[str, ...] = ()) -> OutputStore:
    """The store for an `--out` argument: a local folder or `s3://bucket/prefix` (mirroring `mirrored`).

    Use `tasks.output.layout.output_layout`, which knows DIR's folders, rather than this.
    """
    if location_kind(out, "--out") == "s3":
        from tasks.media.s3 import S3Access, require_aws

        require_aws()
        from tasks.output.storage_s3 import S3Output

        return S3Output(out, S3Access.from_settings(), mirrored)
    return LocalOutput(out)
