"""Decode ahead of the model: worker processes keep a bounded queue of decoded files.

A shard's files are handed over in the order the model will want them. Worker
processes (PyAV: demux, decode, resample to 16 kHz mono float32) run ahead while
the model is busy with earlier batches; at most `ahead_s` seconds of audio and
`ahead_files` files wait decoded, so memory stays bounded whatever the shard's
size. `take(batch)` returns the batch's clips in order and how long it had to
wait: zero when decoding keeps up, which is the point. A file longer than
`tasks.media.pieces.SPILL_AFTER_S` is not held in memory at all: its worker writes it
to a spill folder as it decodes and hands over a `LongAudio` (a path), which the batch
transcribes piece by piece; the file is removed when the next batch is taken.

Who does what: a thread per worker in this process gets each file a local path
(nothing for a folder; a download for S3, so credentials and network stay here),
then hands the path to a worker process that only decodes it. Processes, not
threads, decode: PyAV holds the GIL for part of each frame, and a decoder that
crashes (a malformed file can take FFmpeg down) kills only its worker. A file
whose worker died is decoded again alone in a fresh process; if that one dies
too the file is a failed row, and the other files carry on.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import types
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from tasks.lifeline import exit_with_owner, owner_lifeline
from tasks.media import pieces
from tasks.media.audio import MediaError
from tasks.media.pieces import LongAudio, decode_spilling
from tasks.media.sources import MediaSource
from tasks.records import Clip, Failure, MediaItem
from tasks.settings import cpu_cores

log = logging.getLogger(__name__)

AHEAD_S = 1200.0  # two batches of audio (flows/transcribe_shard.py): ~77 MB of float32
AHEAD_FILES = 64
WORKER_CRASHED = Failure("decode failed: the decoder crashed on this file (its worker process died)")

Decoded = Clip | LongAudio | Failure  # a clip, a long file spilled to disk, or why the file cannot be decoded
Decoder = Callable[[MediaItem], Decoded]


def decode_workers(configured: int = 0, cores: int | None = None) -> int:
    """Worker processes for decoding: as configured, else all cores but one (at least 1, at most 8).

    One core stays with the model; decoding runs hundreds of times faster than real time,
    so a few workers keep even a GPU fed.
    """
    if configured:
        return configured
    return max(1, min(8, (cores or cpu_cores()) - 1))


@dataclass(frozen=True, slots=True)
class Batch:
    """Decoded audio for one batch, in the batch's order, and the seconds the consumer waited."""

    decoded: tuple[Decoded, ...]
    waited_s: float


class DecodeAhead:
    """Decode `items` in worker processes, in order, a bounded amount ahead of `take`."""

    def __init__(
        self,
        source: MediaSource,
        items: Sequence[MediaItem],
        workers: int,
        ahead_s: float = AHEAD_S,
        ahead_files: int = AHEAD_FILES,
        decoder: Decoder | None = None,  # a module-level function, run in the workers (tests)
        spill_after_s: float | None = None,  # longer files go to disk (default: tasks.media.pieces.SPILL_AFTER_S)
    ) -> None:
        self._source, self._workers, self._decoder = source, max(1, workers), decoder
        self._ahead_s, self._ahead_files = ahead_s, ahead_files
        self._upcoming: Iterator[MediaItem] = iter(items)
        self._pending: deque[tuple[MediaItem, Future[Decoded]]] = deque()
        self._fetchers = ThreadPoolExecutor(self._workers, thread_name_prefix="fetch")
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None  # started with the first file
        # Long files are decoded to disk here (tasks/media/pieces.py); a batch's spill files are removed
        # when the next batch is taken, so a retried batch task can still read them.
        self._spill_dir = new_spill_dir()
        self._handed: list[str] = []
        self._spill_after_s = spill_after_s or pieces.SPILL_AFTER_S
        self._fill()

    def take(self, batch: Sequence[MediaItem]) -> Batch:
        """The batch's decoded clips; `batch` must be the next files in the order given."""
        started = time.perf_counter()
        self._drop_handed()
        decoded: list[Decoded] = []
        for item in batch:
            if not self._pending:
                self._submit_next()
            queued, future = self._pending.popleft()
            if queued.source != item.source:
                raise ValueError(f"take: expected {queued.source}, got {item.source} (batches out of order)")
            decoded.append(future.result())
            self._fill()
        self._handed = [d.path for d in decoded if isinstance(d, LongAudio)]
        return Batch(tuple(decoded), time.perf_counter() - started)

    def close(self) -> None:
        self._fetchers.shutdown(wait=True, cancel_futures=True)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self._spill_dir, ignore_errors=True)

    def _drop_handed(self) -> None:
        for path in self._handed:
            Path(path).unlink(missing_ok=True)
        self._handed = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _fill(self) -> None:
        """Submit files until `ahead_s` of audio or `ahead_files` files are queued."""
        queued_s = sum(item.duration_s or 0.0 for item, _ in self._pending)
        while len(self._pending) < self._ahead_files and queued_s < self._ahead_s and self._submit_next():
            queued_s += self._pending[-1][0].duration_s or 0.0

    def _submit_next(self) -> bool:
        item = next(self._upcoming, None)
        if item is None:
            return False
        self._pending.append((item, self._fetchers.submit(self._fetch_and_decode, item)))
        return True

    def _fetch_and_decode(self, item: MediaItem) -> Decoded:
        """In a fetch thread: a local path for the file, decoded by a worker process."""
        try:
            with self._source.local_path(item.locator) as path:
                pool = self._shared_pool()
                try:
                    return _submit(pool, item, path, self._decoder, (self._spill_dir, self._spill_after_s)).result()
                except BrokenProcessPool:
                    self._replace_pool(pool)
                    return self._decode_alone(item, path)
        except OSError as error:
            return Failure(f"cannot read: {error.strerror or error}")

    def _decode_alone(self, item: MediaItem, path: Path) -> Decoded:
        """A worker died while it had this file: decode it in a process of its own to know."""
        log.warning("a decoder process died; decoding %s alone", item.source)
        with ProcessPoolExecutor(1, mp_context=_CONTEXT, **_worker_options()) as alone:
            try:
                return _submit(alone, item, path, self._decoder, (self._spill_dir, self._spill_after_s)).result()
            except BrokenProcessPool:
                log.warning("%s crashed its decoder again: failed", item.source)
                return WORKER_CRASHED

    def _shared_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(self._workers, mp_context=_CONTEXT, **_worker_options())
            return self._pool

    def _replace_pool(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:  # the first thread to see the break replaces it
                self._pool = ProcessPoolExecutor(self._workers, mp_context=_CONTEXT, **_worker_options())
        broken.shutdown(wait=False, cancel_futures=True)


SPILL_PREFIX = "transcribe-all-decode-"


def new_spill_dir() -> str:
    """A temp folder for this process's long files, named after its pid; folders of dead processes go first.

    A SIGKILLed worker cannot clean up, and its folder may hold a gigabyte per 10 hours of audio.
    """
    for folder in Path(tempfile.gettempdir()).glob(f"{SPILL_PREFIX}*-*"):
        owner = folder.name[len(SPILL_PREFIX):].split("-", 1)[0]
        if owner.isdigit() and not _alive(int(owner)):
            shutil.rmtree(folder, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{SPILL_PREFIX}{os.getpid()}-")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


# forkserver: this process holds model threads (OpenMP, CUDA) that must not be forked. The workers
# read no settings or credentials (they get a local path), so a long-lived server is safe.
_CONTEXT = multiprocessing.get_context("forkserver")


def _start_worker(lifeline: Connection) -> None:
    """In a new decoder process. A terminal's Ctrl-C reaches the whole process group: the owner handles it
    (transcribe_all/interrupt.py stops the decoders), so a decoder must not die mid-import with a
    KeyboardInterrupt traceback. And a SIGKILLed owner runs no clean-up: the decoder ends itself when
    the owner's end of its lifeline closes (tasks/lifeline.py)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_owner(lifeline)


def _worker_options() -> dict[str, Any]:
    return {"initializer": _start_worker, "initargs": (owner_lifeline(_CONTEXT),)}


_SPAWN_LOCK = threading.Lock()


def _submit(
    pool: ProcessPoolExecutor, item: MediaItem, path: Path, decoder: Decoder | None, spill: tuple[str, float]
) -> Future[Decoded]:
    """Submit with the caller's `__main__` hidden: `submit` may start a worker, and multiprocessing
    re-imports `__main__` in every worker it starts, which would run a script that calls the flow
    without an `if __name__ == "__main__":` guard all over again. The worker code lives in this module."""
    with _SPAWN_LOCK:
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            return pool.submit(_decode, item, str(path), decoder, spill)
        finally:
            sys.modules["__main__"] = main


def _decode(item: MediaItem, path: str, decoder: Decoder | None, spill: tuple[str, float]) -> Decoded:
    """In a worker process: a short file as a clip, a long one written to disk as it decodes (`spill`:
    the folder, and the seconds of audio past which a file goes there)."""
    if decoder is not None:
        return decoder(item)
    try:
        return decode_spilling(path, item.source, item.duration_s, *spill)
    except MediaError as error:
        return Failure(str(error))
    except OSError as error:
        return Failure(f"cannot read: {error.strerror or error}")
