"""`OutputLayout`: the one owner of DIR. Nothing else knows its folder names or ships files to it.

DIR (a folder or `s3://bucket/prefix`) holds:

    manifest/run_id=<RUN>/part-00000.parquet     merged rows, one per source per run (what users read)
    _staging/run_id=<RUN>/<writer>.parquet       rows staged by the planner and every batch, until the merge
    _stages/run_id=<RUN>/<writer>.json           stage seconds of every writer
    runs/<RUN>.parquet                           one metrics row per run
    shards/run_id=<RUN>/shard-<N>-<id>.parquet   what each shard attempt held its worker for
    transcripts/<config>/<sha[:2]>/<sha>.{json,srt,vtt}   one transcript per content × config
    _plans/run_id=<RUN>/shard-<N>.parquet        each shard's file list
    _quarantine/<when>/<original path>           corrupt parts moved aside
    _lease.json                                  the run that may write now (tasks/output/lease.py)

Plain functions elsewhere take a local root and ask this module for paths (`staged_part`,
`merged_part`…); task wrappers get the layout from `output_layout(out)`, built once per
process: `out` (a string) is what travels between flow runs, the layout is what writes.
Transcripts are addressed by content × config, so two sources can never share one by
accident (`a\\b.wav` and `a/b.wav`), and a later run never rewrites what an older row points at.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from threading import Lock

from tasks.output.lease import RunLease, holding
from tasks.output.storage import OutputStore, open_output
from tasks.output.transcripts import UnsafePathError
from tasks.settings import worker_settings

MANIFEST = "manifest"
STAGING = "_staging"  # the leading underscore hides it from dataset readers of DIR
STAGES = "_stages"
RUNS = "runs"
SHARDS = "shards"  # tasks/output/shard_attempts.py
TRANSCRIPTS = "transcripts"
PLANS = "_plans"
QUARANTINE = "_quarantine"
LEASE = "_lease.json"
SEARCH_INDEX = "search/index.sqlite"  # tasks/output/search.py
SEARCH_GENERATION = "search/generation"  # names the index's last version (S3)
SITE = "site"  # tasks/output/site.py
MIRRORED = (MANIFEST, STAGING, STAGES, RUNS, SHARDS)  # what the ledger, the merge and the metrics read
_SHA = re.compile(r"[0-9a-f]{8,64}")
_CONFIG = re.compile(r"[0-9A-Za-z_-]{1,64}")  # a config hash (16 hex digits), or a test's name for one


def run_folder(kind: str, run_id: str) -> str:
    return f"{kind}/run_id={run_id}"


def merged_part(run_id: str) -> str:
    return f"{run_folder(MANIFEST, run_id)}/part-00000.parquet"


def staged_part(run_id: str, writer: str) -> str:
    return f"{run_folder(STAGING, run_id)}/{writer}.parquet"


def stage_times_file(run_id: str, writer: str) -> str:
    return f"{run_folder(STAGES, run_id)}/{writer}.json"


def run_row_file(run_id: str) -> str:
    return f"{RUNS}/{run_id}.parquet"


def shard_attempt_file(run_id: str, shard_id: int, attempt: str) -> str:
    return f"{run_folder(SHARDS, run_id)}/shard-{shard_id:05d}-{attempt}.parquet"


def plan_file(run_id: str, shard_id: int) -> str:
    return f"{run_folder(PLANS, run_id)}/shard-{shard_id:05d}.parquet"


def transcript_stem(config_hash: str, content_sha256: str | None) -> str:
    """`transcripts/<config>/<sha[:2]>/<sha>`: add `.json`, `.srt` or `.vtt`. Injective by construction."""
    if not content_sha256 or not _SHA.fullmatch(content_sha256) or not _CONFIG.fullmatch(config_hash):
        raise UnsafePathError(f"no transcript path for content {content_sha256!r} × config {config_hash!r}")
    return f"{TRANSCRIPTS}/{config_hash}/{content_sha256[:2]}/{content_sha256}"


def transcript_json(config_hash: str, content_sha256: str | None) -> str:
    return transcript_stem(config_hash, content_sha256) + ".json"


def quarantine_path(stamp: str, relative: str) -> str:
    return f"{QUARANTINE}/{stamp}/{relative}"


class OutputLayout:
    """DIR for one process: where to write (`write_root`), what to read (`read_root`), how to ship."""

    def __init__(self, store: OutputStore) -> None:
        self.store = store
        self.uri = store.uri

    def write_root(self) -> Path:
        """The local folder writers write into (DIR itself, or the S3 staging folder)."""
        return self.store.local_root()

    def read_root(self) -> Path:
        """A local root holding DIR's manifest, staged parts, stage times and runs rows, up to date."""
        return self.store.pull_manifest()

    def publish(self, paths: Iterable[Path], keep: bool = False) -> None:
        self.store.publish(paths, keep)

    def delete(self, relative_paths: Iterable[str]) -> None:
        self.store.delete(relative_paths)

    def fetch(self, relative: str) -> bytes:
        return self.store.fetch(relative)

    def lease(self, run_id: str, **timing: float) -> RunLease:
        """The run lease on DIR for `run_id` (not yet acquired; see tasks/output/lease.py)."""
        return RunLease(self.store.lease_store(LEASE), run_id, **timing)


@contextmanager
def run_lease(out: str, run_id: str, wait: bool = True) -> Iterator[RunLease]:
    """Hold DIR's run lease for the block (waiting, with a message, while another run holds it)."""
    # the lease logger's waiting line reaches the CLI's terminal and the run's logs (flows/run_logs.py)
    with holding(output_layout(out).lease(run_id), wait) as lease:
        yield lease


_layouts: dict[tuple[str, str], OutputLayout] = {}
_lock = Lock()


def output_layout(out: str) -> OutputLayout:
    """The layout of `out`, built once per process (an S3 client and its staging folder are reused).

    Keyed by the worker's settings too: new settings (another credentials block) get a new store.
    """
    key = (out, worker_settings().model_dump_json())
    with _lock:
        if key not in _layouts:
            _layouts[key] = OutputLayout(open_output(out, MIRRORED))
        return _layouts[key]


def forget_layouts() -> None:
    """Drop cached layouts (tests that change the worker's settings between runs)."""
    with _lock:
        _layouts.clear()
