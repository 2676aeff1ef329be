"""Where the search index, the run rows and the site are read and written, for a local or s3:// DIR.

Locally everything is in DIR. For S3 the index, the run rows and the site are kept in a
cache of their own on the worker (`<cache_dir>/archive/<hash of the URI>/`, not the staging
folder, which holds only what is on its way to the bucket) and shipped through the store
(`ship`). A small `search/generation` object names the index's last version, so a worker
whose copy is current downloads nothing, and one whose copy is stale (another worker
updated it) downloads the index once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterable
from pathlib import Path

from tasks.output.metrics import RUNS_DIR
from tasks.output.search import INDEX_PATH, IndexUpdate, connect, update_index
from tasks.output.storage import LocalOutput, OutputStore
from tasks.output.transcripts import atomic_write_bytes, atomic_write_text
from transcribe_all.settings import worker_settings

GENERATION_PATH = "search/generation"


def refresh_index(store: OutputStore) -> tuple[Path, IndexUpdate]:
    """The local path of DIR's up-to-date index, and what the update did (shipped to S3 if it changed)."""
    root = store.pull_manifest()
    if isinstance(store, LocalOutput):
        db_path = root / INDEX_PATH
        return db_path, update_index(root, db_path)
    db_path = archive_root(store) / INDEX_PATH
    remote = _fetch_text(store, GENERATION_PATH)
    if remote is not None and remote != _generation(db_path):
        atomic_write_bytes(db_path, store.fetch(INDEX_PATH))
    update = update_index(root, db_path)
    if update.runs_read or update.rebuilt or remote is None:
        generation = uuid.uuid4().hex
        with connect(db_path) as db, db:
            db.execute("INSERT OR REPLACE INTO meta VALUES ('generation', ?)", (generation,))
        atomic_write_text(archive_root(store) / GENERATION_PATH, generation)
        # The index first: a reader that sees the new generation finds the index it names.
        ship(store, [db_path, archive_root(store) / GENERATION_PATH])
    return db_path, update


def archive_root(store: OutputStore) -> Path:
    """Where this worker keeps DIR's index, run rows and site: DIR itself, or a cache for an s3:// DIR."""
    if isinstance(store, LocalOutput):
        return store.local_root()
    digest = hashlib.sha256(store.uri.encode("utf-8")).hexdigest()[:16]
    return worker_settings().cache_dir / "archive" / digest


def ship(store: OutputStore, paths: Iterable[Path]) -> None:
    """Upload files of `archive_root(store)` to the same place under an s3:// DIR (a no-op locally).

    Each is hard-linked (else copied) into the store's staging folder, which uploads and removes it.
    """
    if isinstance(store, LocalOutput):
        return
    root = archive_root(store)
    for path in paths:
        staged = store.local_root() / path.relative_to(root)
        staged.parent.mkdir(parents=True, exist_ok=True)
        staged.unlink(missing_ok=True)
        try:
            os.link(path, staged)
        except OSError:
            shutil.copyfile(path, staged)
        store.publish([staged])


def _generation(db_path: Path) -> str | None:
    if not db_path.is_file():
        return None
    try:
        with connect(db_path) as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
    except sqlite3.DatabaseError:  # an unreadable cached copy is replaced by the remote one
        return None
    return str(row[0]) if row else None


def _fetch_text(store: OutputStore, relative: str) -> str | None:
    """A small object's text, or None when it does not exist."""
    try:
        return store.fetch(relative).decode("utf-8").strip()
    except OSError as error:
        if isinstance(error, FileNotFoundError) or any(s in str(error) for s in ("NoSuchKey", "404", "Not Found")):
            return None
        raise


def runs_folder(store: OutputStore) -> Path:
    """A local folder holding DIR/runs/*.parquet (for S3: the run rows mirrored into the staging folder)."""
    if isinstance(store, LocalOutput):
        return store.local_root() / RUNS_DIR
    from tasks.output.storage_s3 import S3Output

    assert isinstance(store, S3Output)
    folder = archive_root(store) / RUNS_DIR
    for relative in _list_s3(store, RUNS_DIR):
        target = archive_root(store) / relative
        if relative.endswith(".parquet") and not target.is_file():  # run rows are written once
            atomic_write_bytes(target, store.fetch(relative))
    return folder


def _list_s3(store: OutputStore, folder: str) -> Iterable[str]:
    from tasks.media.s3 import as_os_error, boto_errors
    from tasks.output.storage_s3 import S3Output
    from tasks.output.transcripts import UnsafePathError, safe_relative_path

    assert isinstance(store, S3Output)
    client, location = store._client, store.location  # the store's own client: same credentials and endpoint
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=location.bucket,
                                                              Prefix=f"{location.prefix}{folder}/")
    try:
        for page in pages:
            for obj in page.get("Contents", []):
                relative = obj["Key"][len(location.prefix):]
                try:
                    yield safe_relative_path(relative).as_posix()
                except UnsafePathError:
                    continue
    except boto_errors() as error:
        raise as_os_error(error, f"listing {store.uri}{folder}/") from error
