"""Decode ahead of the model: worker processes keep a bounded queue of decoded files.

A shard's files are handed over in the order the model will want them. Worker
processes (PyAV: demux, decode, resample to 16 kHz mono float32) run ahead while
the model is busy with earlier batches; at most `ahead_s` seconds of audio and
`ahead_files` files wait decoded, so memory stays bounded whatever the shard's
size. `take(batch)` returns the batch's clips in order and how long it had to
wait: zero when decoding keeps up, which is the point.

Processes, not threads: decoding holds the GIL for part of each frame, and a
decoder that crashes (a malformed file can take FFmpeg down) kills only its
worker. The file that broke a worker is retried alone in a fresh one; if it
breaks that one too it becomes a failed row, and the other files are decoded again.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from tasks.audio import MediaError, decode_audio
from tasks.records import Clip, MediaItem
from tasks.s3 import S3Access
from tasks.sources import MediaSource, open_source

log = logging.getLogger(__name__)

AHEAD_S = 1200.0  # two batches of audio (flows/transcribe_shard.py): ~77 MB of float32
AHEAD_FILES = 64
WORKER_CRASHED = "decode failed: the decoder crashed on this file (its worker process died)"

Decoded = Clip | str  # a clip, or the reason the file cannot be decoded
Decoder = Callable[[MediaItem], Decoded]


def decode_workers(configured: int = 0, cores: int | None = None) -> int:
    """Worker processes for decoding: as configured, else all cores but one (at least 1, at most 8).

    One core stays with the model; decoding runs hundreds of times faster than real time,
    so a few workers keep even a GPU fed.
    """
    if configured:
        return configured
    return max(1, min(8, (cores or os.cpu_count() or 2) - 1))


def decode_item(item: MediaItem, source: MediaSource) -> Decoded:
    """Decode one file of `source`; a file that cannot be decoded gives its reason."""
    try:
        with source.local_path(item.locator) as path:
            return Clip(item.source, decode_audio(path, item.duration_s))
    except MediaError as error:
        return str(error)
    except OSError as error:
        return f"cannot read: {error.strerror or error}"


@dataclass(frozen=True, slots=True)
class Batch:
    """Decoded audio for one batch, in the batch's order, and the seconds the consumer waited."""

    decoded: tuple[Decoded, ...]
    waited_s: float


class DecodeAhead:
    """Decode `items` in worker processes, in order, a bounded amount ahead of `take`."""

    def __init__(
        self,
        source: str,
        items: Sequence[MediaItem],
        workers: int,
        access: S3Access | None = None,
        ahead_s: float = AHEAD_S,
        ahead_files: int = AHEAD_FILES,
        decoder: Callable[[MediaItem], Decoded] | None = None,  # module-level, for tests
    ) -> None:
        self._source, self._access, self._workers = source, access, max(1, workers)
        self._decoder = decoder
        self._ahead_s, self._ahead_files = ahead_s, ahead_files
        self._upcoming: Iterator[MediaItem] = iter(items)
        self._pending: deque[tuple[MediaItem, Future[Decoded]]] = deque()
        self._pool: ProcessPoolExecutor | None = None  # started with the first file
        self._fill()

    def take(self, batch: Sequence[MediaItem]) -> Batch:
        """The batch's decoded clips; `batch` must be the next files in the order given."""
        started = time.perf_counter()
        decoded: list[Decoded] = []
        for item in batch:
            if not self._pending:
                self._submit_next()
            queued, future = self._pending.popleft()
            if queued.source != item.source:
                raise ValueError(f"take: expected {queued.source}, got {item.source} (batches out of order)")
            decoded.append(self._result(item, future))
            self._fill()
        return Batch(tuple(decoded), time.perf_counter() - started)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

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
        self._pending.append((item, self._submit(item)))
        return True

    def _submit(self, item: MediaItem) -> Future[Decoded]:
        if self._pool is None:
            self._pool = self._start_pool()
        return self._pool.submit(_decode, item, self._decoder)

    def _result(self, item: MediaItem, future: Future[Decoded]) -> Decoded:
        try:
            return future.result()
        except BrokenProcessPool:
            pass
        # A worker died: decode this file alone in a fresh pool to see whether it is the cause.
        log.warning("a decoder process died; retrying %s alone", item.source)
        self._restart()
        try:
            result = self._submit(item).result()
        except BrokenProcessPool:
            log.warning("%s crashed the decoder again: failed", item.source)
            result = WORKER_CRASHED
            self._restart()
        self._resubmit_pending()
        return result

    def _start_pool(self) -> ProcessPoolExecutor:
        # forkserver: the parent holds model threads (OpenMP, CUDA) that must not be forked.
        return ProcessPoolExecutor(self._workers, mp_context=multiprocessing.get_context("forkserver"),
                                   initializer=_open_source, initargs=(self._source, self._access))

    def _restart(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._start_pool()

    def _resubmit_pending(self) -> None:
        """Files the dead pool had not finished are queued again on the new one."""
        self._pending = deque(
            (item, future if _finished(future) else self._submit(item)) for item, future in self._pending
        )


def _finished(future: Future[Decoded]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


# --- in the worker processes -------------------------------------------------------------------

_worker_source: MediaSource | None = None


def _open_source(source: str, access: S3Access | None) -> None:
    global _worker_source
    _worker_source = open_source(source, access=access)


def _decode(item: MediaItem, decoder: Decoder | None) -> Decoded:
    if decoder is not None:
        return decoder(item)
    assert _worker_source is not None, "worker started without its source"
    return decode_item(item, _worker_source)
