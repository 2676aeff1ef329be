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

from tasks.output.layout import RUNS, SEARCH_GENERATION, SEARCH_INDEX, OutputLayout
from tasks.output.search import IndexUpdate, connect, update_index
from tasks.output.storage import LocalOutput
from tasks.output.transcripts import atomic_write_bytes, atomic_write_text
from tasks.settings import worker_settings


def refresh_index(layout: OutputLayout) -> tuple[Path, IndexUpdate]:
    """The local path of DIR's up-to-date index, and what the update did (shipped to S3 if it changed)."""
    root = layout.read_root()
    if _is_local(layout):
        db_path = root / SEARCH_INDEX
        return db_path, update_index(root, db_path)
    db_path = archive_root(layout) / SEARCH_INDEX
    remote = _fetch_text(layout, SEARCH_GENERATION)
    if remote is not None and remote != _generation(db_path):
        atomic_write_bytes(db_path, layout.fetch(SEARCH_INDEX))
    update = update_index(root, db_path)
    if update.runs_read or update.rebuilt or remote is None:
        generation = uuid.uuid4().hex
        with connect(db_path) as db, db:
            db.execute("INSERT OR REPLACE INTO meta VALUES ('generation', ?)", (generation,))
        atomic_write_text(archive_root(layout) / SEARCH_GENERATION, generation)
        # The index first: a reader that sees the new generation finds the index it names.
        ship(layout, [db_path, archive_root(layout) / SEARCH_GENERATION])
    return db_path, update


def archive_root(layout: OutputLayout) -> Path:
    """Where this worker keeps DIR's index and site: DIR itself, or a cache for an s3:// DIR."""
    if _is_local(layout):
        return layout.write_root()
    digest = hashlib.sha256(layout.uri.encode("utf-8")).hexdigest()[:16]
    return worker_settings().cache_dir / "archive" / digest


def ship(layout: OutputLayout, paths: Iterable[Path]) -> None:
    """Upload files of `archive_root(layout)` to the same place under an s3:// DIR (a no-op locally).

    Each is hard-linked (else copied) into the layout's staging folder, which uploads and removes it.
    """
    if _is_local(layout):
        return
    root = archive_root(layout)
    for path in paths:
        staged = layout.write_root() / path.relative_to(root)
        staged.parent.mkdir(parents=True, exist_ok=True)
        staged.unlink(missing_ok=True)
        try:
            os.link(path, staged)
        except OSError:
            shutil.copyfile(path, staged)
        layout.publish([staged])


def runs_folder(layout: OutputLayout) -> Path:
    """A local folder holding DIR/runs/*.parquet (for S3: mirrored with the manifest by `read_root`)."""
    return layout.read_root() / RUNS


def _is_local(layout: OutputLayout) -> bool:
    return isinstance(layout.store, LocalOutput)


def _generation(db_path: Path) -> str | None:
    if not db_path.is_file():
        return None
    try:
        with connect(db_path) as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
    except sqlite3.DatabaseError:  # an unreadable cached copy is replaced by the remote one
        return None
    return str(row[0]) if row else None


def _fetch_text(layout: OutputLayout, relative: str) -> str | None:
    """A small object's text, or None when it does not exist."""
    try:
        return layout.fetch(relative).decode("utf-8").strip()
    except OSError as error:
        if isinstance(error, FileNotFoundError) or any(s in str(error) for s in ("NoSuchKey", "404", "Not Found")):
            return None
        raise
