"""Full-text search over the latest transcript of every file: an SQLite FTS5 index in DIR/search/.

Why FTS5: it ships inside Python's `sqlite3` (no dependency, no server, one file that
any worker can copy), its `unicode61` tokenizer folds case and diacritics and drops
punctuation on both the text and the query, it has phrase queries and BM25 ranking,
and its "ORDER BY rank LIMIT n" path answers a query over millions of segments in
milliseconds (bench/bench_search.py). tantivy would be faster to build but adds a
native wheel and a directory of segment files to ship to S3.

What is indexed: per `source`, the newest manifest row that settled it. Text lives per
*content* (content_sha256 × config_hash): an `ok` row holds the segments, and a
`skipped` row points at the same content, so a file skipped as "already done" or
"same content as …" finds the text its twin's ok row holds. The `runs` table records
which manifest partitions were read (with a fingerprint of their parts), so an update
reads only new or changed partitions: its cost grows with the run, not the archive.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from tasks.output.layout import MANIFEST, SEARCH_INDEX, run_folder
from tasks.output.manifests import MANIFEST_SCHEMA
from tasks.output.parts import naming_unreadable

INDEX_PATH = SEARCH_INDEX
SCHEMA_VERSION = "1"
MARK_OPEN, MARK_CLOSE = "\x02", "\x03"  # highlight markers: control characters never found in text

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE runs (run_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL);
CREATE TABLE contents (id INTEGER PRIMARY KEY, content_sha256 TEXT NOT NULL, config_hash TEXT NOT NULL,
  run_id TEXT NOT NULL, transcript_path TEXT, transcript_url TEXT, language TEXT,
  UNIQUE (content_sha256, config_hash));
CREATE TABLE files (source BLOB PRIMARY KEY, run_id TEXT NOT NULL, status TEXT NOT NULL, error TEXT,
  duration_s REAL, language TEXT, flags TEXT, finished_at TEXT, content_sha256 TEXT, config_hash TEXT,
  content_run TEXT, transcript_path TEXT, transcript_url TEXT);
CREATE INDEX files_content ON files (content_sha256, config_hash);
CREATE TABLE segments (id INTEGER PRIMARY KEY, content_id INTEGER NOT NULL, start REAL, "end" REAL, text TEXT);
CREATE INDEX segments_content ON segments (content_id);
CREATE VIRTUAL TABLE segments_fts USING fts5 (text, content='segments', content_rowid='id',
  tokenize='unicode61 remove_diacritics 2');
CREATE TRIGGER segments_ai AFTER INSERT ON segments BEGIN
  INSERT INTO segments_fts (rowid, text) VALUES (new.id, new.text); END;
CREATE TRIGGER segments_ad AFTER DELETE ON segments BEGIN
  INSERT INTO segments_fts (segments_fts, rowid, text) VALUES ('delete', old.id, old.text); END;
"""
_COLUMNS = ["source", "status", "error", "duration_s", "language", "quality_flags", "finished_at",
            "content_sha256", "config_hash", "segments", "transcript_path", "transcript_url", "done_in_run"]


class QueryError(ValueError):
    """A query with nothing to search for."""


@dataclass(frozen=True, slots=True)
class Hit:
    source: str
    start: float
    end: float
    text: str  # the segment's text, highlighted matches between MARK_OPEN and MARK_CLOSE
    score: float  # higher is better (negated BM25)
    transcript_url: str | None
    transcript_path: str | None

    def plain_text(self) -> str:
        return self.text.replace(MARK_OPEN, "").replace(MARK_CLOSE, "")


@dataclass(frozen=True, slots=True)
class IndexUpdate:
    runs_read: tuple[str, ...]  # partitions read in this update
    rows_read: int
    rebuilt: bool  # the index was missing or unreadable and was built from the whole manifest
    files: int  # files in the index afterwards


def db_source(source: str) -> bytes:
    """Sources are stored as bytes: a non-UTF-8 name (a lone surrogate in Python) survives the round trip."""
    return source.encode("utf-8", "surrogateescape")


def py_source(stored: bytes) -> str:
    return bytes(stored).decode("utf-8", "surrogateescape")


@contextmanager
def connect(db_path: Path) -> Iterator[sqlite3.Connection]:
    # A search and a run's update may meet: the writer holds the lock for one run's rows at most.
    with closing(sqlite3.connect(db_path, timeout=120)) as db:
        yield db


def update_index(root: Path, db_path: Path) -> IndexUpdate:
    """Bring the index at `db_path` up to date with `root/manifest`; rebuild it if missing or corrupt."""
    rebuilt = not _usable(db_path)
    if rebuilt:
        _create(db_path)
    try:
        return _update(root, db_path, rebuilt)
    except sqlite3.DatabaseError:
        if rebuilt:
            raise
        _create(db_path)  # damage the quick check missed: the manifest has everything, start again
        return _update(root, db_path, rebuilt=True)


def _update(root: Path, db_path: Path, rebuilt: bool) -> IndexUpdate:
    with connect(db_path) as db:
        done = dict(db.execute("SELECT run_id, fingerprint FROM runs").fetchall())
        todo = [(run, fp) for run, fp in _partitions(root) if done.get(run) != fp]
        rows = 0
        for run_id, fingerprint in todo:  # one transaction per run: a crash leaves whole runs indexed
            with db, naming_unreadable(partial(_parts, root, run_id), _COLUMNS):  # a bad part: rolled back
                rows += _apply_run(db, root, run_id)
                db.execute("INSERT OR REPLACE INTO runs VALUES (?, ?)", (run_id, fingerprint))
        if rebuilt and rows:  # one b-tree instead of one per insert burst: fewer pages read per query
            with db:
                db.execute("INSERT INTO segments_fts (segments_fts) VALUES ('optimize')")
        files = int(db.execute("SELECT count(*) FROM files").fetchone()[0])
    return IndexUpdate(tuple(run for run, _ in todo), rows, rebuilt, files)


def _usable(db_path: Path) -> bool:
    if not db_path.is_file():
        return False
    try:
        with connect(db_path) as db:
            version = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            db.execute("SELECT count(*) FROM segments_fts WHERE segments_fts MATCH 'x'").fetchone()
            return version is not None and version[0] == SCHEMA_VERSION
    except sqlite3.DatabaseError:
        return False


def _create(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    db_path.unlink(missing_ok=True)
    for suffix in ("-journal", "-wal", "-shm"):
        db_path.with_name(db_path.name + suffix).unlink(missing_ok=True)
    with connect(db_path) as db, db:
        db.executescript(_SCHEMA)
        db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))


def _partitions(root: Path) -> list[tuple[str, str]]:
    """(run_id, fingerprint of its parts' names and sizes) for every merged run, oldest first."""
    folder = root / MANIFEST
    found = []
    for run in sorted(folder.glob("run_id=*")) if folder.is_dir() else ():
        parts = sorted(p for p in run.glob("*.parquet") if not p.name.startswith((".", "_")))
        if parts:
            found.append((run.name.removeprefix("run_id="), ";".join(_stamp(p) for p in parts)))
    return found


def _stamp(part: Path) -> str:
    """Name and size: a merge that adds rows, or a rewrite that adds flags, changes the size. Not the
    mtime: an S3 worker's mirror of the manifest has its own mtimes, and would re-read every run."""
    return f"{part.name}:{part.stat().st_size}"


def _apply_run(db: sqlite3.Connection, root: Path, run_id: str) -> int:
    """Fold one run's rows in; a row older than what the index holds for its source changes nothing."""
    replaced: set[tuple[str, str]] = set()
    missing: dict[str, set[tuple[str, str]]] = {}  # run holding the ok row → contents a skipped row needs
    rows = 0
    # Batch by batch: a 100,000-file run's segments never sit in Python objects all at once.
    for batch in _batches(root, run_id):
        for row in batch.to_pylist():
            if row["status"] == "ok" and row["segments"] is not None:
                _add_content(db, row, run_id)
            elif row["status"] == "skipped" and row["done_in_run"] and not _has_content(db, row):
                missing.setdefault(str(row["done_in_run"]), set()).add((str(row["content_sha256"]),
                                                                        str(row["config_hash"])))
            replaced |= _upsert_file(db, row, run_id)
        rows += batch.num_rows
    for ok_run, contents in missing.items():  # text dropped when its files moved on, now wanted again
        still = {sha for sha, cfg in contents if not _has_content(db, {"content_sha256": sha, "config_hash": cfg})}
        if still:  # (a "same content as" twin's ok row may have come later in the same run)
            _add_from_run(db, root, ok_run, still)
    for content in replaced:
        _drop_if_unused(db, content)
    return rows


def _parts(root: Path, run_id: str) -> list[Path]:
    folder = root / run_folder(MANIFEST, run_id)
    return sorted(p for p in folder.glob("*.parquet") if not p.name.startswith((".", "_")))


def _batches(root: Path, run_id: str, where: pc.Expression | None = None) -> Iterator[pa.RecordBatch]:
    dataset = ds.dataset(_parts(root, run_id), format="parquet", schema=MANIFEST_SCHEMA)
    yield from dataset.to_batches(columns=_COLUMNS, filter=where, batch_size=2000)


def _add_from_run(db: sqlite3.Connection, root: Path, run_id: str, contents: set[str]) -> None:
    """The ok rows of `run_id` for these contents (a skipped row's text, e.g. after a config went back)."""
    wanted = (pc.field("status") == "ok") & pc.field("content_sha256").isin(sorted(contents))
    for batch in _batches(root, run_id, wanted):
        for row in batch.to_pylist():
            if row["segments"] is not None:
                _add_content(db, row, run_id)


def _has_content(db: sqlite3.Connection, row: dict[str, object]) -> bool:
    key = (row["content_sha256"], row["config_hash"])
    return db.execute("SELECT 1 FROM contents WHERE content_sha256 = ? AND config_hash = ?", key).fetchone() is not None


def _add_content(db: sqlite3.Connection, row: dict[str, object], run_id: str) -> None:
    if _has_content(db, row):
        return  # one ok row per content × config across runs: its text is already here
    cursor = db.execute("INSERT INTO contents VALUES (NULL, ?, ?, ?, ?, ?, ?)",
                        (row["content_sha256"], row["config_hash"], run_id, row["transcript_path"],
                         row["transcript_url"], row["language"]))
    segments = row["segments"] or []
    assert isinstance(segments, list)
    db.executemany('INSERT INTO segments (content_id, start, "end", text) VALUES (?, ?, ?, ?)',
                   [(cursor.lastrowid, s["start"], s["end"], s["text"]) for s in segments])


def _upsert_file(db: sqlite3.Connection, row: dict[str, object], run_id: str) -> set[tuple[str, str]]:
    """Newer rows win per source; the text pointer moves on an ok or skipped row, and is dropped on a
    removed one (search no longer finds the file). Returns the content left."""
    source = db_source(str(row["source"]))
    old = db.execute("SELECT run_id, content_run, content_sha256, config_hash FROM files WHERE source = ?",
                     (source,)).fetchone()
    if old is None:
        db.execute("INSERT INTO files (source, run_id, status) VALUES (?, '', '')", (source,))
        old = ("", "", None, None)
    if run_id >= old[0]:
        finished = row["finished_at"]
        assert finished is None or isinstance(finished, datetime)
        db.execute("UPDATE files SET run_id = ?, status = ?, error = ?, duration_s = ?, language = ?, flags = ?,"
                   " finished_at = ? WHERE source = ?",
                   (run_id, row["status"], row["error"], row["duration_s"], row["language"],
                    json.dumps(row["quality_flags"] or []), finished.isoformat() if finished else None, source))
    removed = row["status"] == "removed"  # gone from SOURCE: no text is this file's any more
    settled = row["status"] in ("ok", "skipped") and row["content_sha256"] and row["config_hash"]
    if not (settled or removed) or run_id < (old[1] or ""):
        return set()
    now = (None, None, None, None) if removed else (row["content_sha256"], row["config_hash"],
                                                     row["transcript_path"], row["transcript_url"])
    db.execute("UPDATE files SET content_sha256 = ?, config_hash = ?, content_run = ?, transcript_path = ?,"
               " transcript_url = ? WHERE source = ?", (now[0], now[1], run_id, now[2], now[3], source))
    left = (old[2], old[3])
    return {left} if left[0] and left != now[:2] else set()


def _drop_if_unused(db: sqlite3.Connection, content: tuple[str, str]) -> None:
    if db.execute("SELECT 1 FROM files WHERE content_sha256 = ? AND config_hash = ?", content).fetchone():
        return
    found = db.execute("SELECT id FROM contents WHERE content_sha256 = ? AND config_hash = ?", content).fetchone()
    if found:
        db.execute("DELETE FROM segments WHERE content_id = ?", found)
        db.execute("DELETE FROM contents WHERE id = ?", found)


def fts_query(query: str) -> str:
    """The user's words as an FTS5 query: every "quoted phrase" and every bare word must match.

    Words are cut the way the index's tokenizer cuts them (letters and digits; `don't` is the
    phrase "don t"), so punctuation never reaches FTS5's query syntax and never has to match.
    """
    groups = []
    for quoted, bare in re.findall(r'"([^"]*)"?|(\S+)', query):
        words = re.findall(r"[^\W_]+", quoted or bare)
        if words:
            groups.append('"' + " ".join(words) + '"')
    if not groups:
        raise QueryError(f"no words to search for in {query!r}")
    return " AND ".join(groups)


RANK_WINDOW = 20_000  # a query matching more segments than this ranks the most recently indexed ones

# BM25 costs a little per matching row: scoring every match of a word said in half the archive took
# seconds at 2,000,000 segments. Walking the doclist newest-first and scoring a bounded window keeps
# every query fast; the ranking is exact whenever a query matches fewer segments than the window.
_TOP = """SELECT id, score FROM (SELECT rowid AS id, -bm25(segments_fts) AS score FROM segments_fts
  WHERE segments_fts MATCH ? ORDER BY rowid DESC LIMIT ?) ORDER BY score DESC LIMIT ?"""
_MARKED = f"""SELECT rowid, highlight(segments_fts, 0, '{MARK_OPEN}', '{MARK_CLOSE}') FROM segments_fts
  WHERE segments_fts MATCH ? AND rowid IN ({{}})"""
_ROWS = """SELECT s.id, f.source, s.start, s."end", c.transcript_url, c.transcript_path
FROM segments s JOIN contents c ON c.id = s.content_id
JOIN files f ON f.content_sha256 = c.content_sha256 AND f.config_hash = c.config_hash WHERE s.id IN ({})"""


def search(db_path: Path, query: str, limit: int = 20) -> list[Hit]:
    """Best segments first. A file shares its text with its same-content twins: each is a hit."""
    match = fts_query(query)
    with connect(db_path) as db:
        top = dict(db.execute(_TOP, (match, RANK_WINDOW, limit)).fetchall())
        marks = ", ".join("?" * len(top))
        marked = dict(db.execute(_MARKED.format(marks), (match, *top)).fetchall())
        rows = db.execute(_ROWS.format(marks), tuple(top)).fetchall()
    hits = [Hit(py_source(source), start, end, marked[sid], top[sid], url or None, path)
            for sid, source, start, end, url, path in rows]
    hits.sort(key=lambda h: (-h.score, h.source, h.start))
    return hits[:limit]
