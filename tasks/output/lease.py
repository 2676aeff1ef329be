"""The run lease: one run writes to a DIR at a time.

The lease is a small JSON record at `DIR/_lease.json` naming the run that holds it (its
run id, host, pid, a random token and when it was last renewed). Its holder is the *run*,
not the process: shard flows on other workers carry the run id and write under the
parent's lease, and a retry of the same flow run takes its own lease back at once.

- acquire: create the record only if there is none (local: written to a private file, then
  `link()`ed into place, which fails if the lease exists; S3: a conditional put, `If-None-Match: *`);
- renew: every `renew_s` (10 s) the holder rewrites it, only if it is still its own (S3:
  `If-Match: <etag>`), from a daemon thread;
- take over: a record not renewed for `expiry_s` (60 s, by its own clock or by how long
  the waiter has watched it unchanged), or held by a dead pid on this very host, is
  replaced by a compare-and-swap (local: rename it aside and check it is the record that
  was judged stale; S3: `If-Match` on its etag). Of two waiters racing, one wins.

A second run waits, saying who holds DIR, or with `wait=False` stops at once with one line.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

RENEW_S = 10.0
EXPIRY_S = 60.0
POLL_S = 2.0


class LeaseBusy(RuntimeError):
    """DIR is held by another live run and the caller chose not to wait."""


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    run_id: str
    host: str
    pid: int
    token: str
    renewed_at: float  # the holder's wall clock, seconds since the epoch

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @staticmethod
    def from_bytes(data: bytes) -> LeaseRecord | None:
        """None for a record that is not one (a torn or hand-edited file): treated as stale."""
        try:
            return LeaseRecord(**json.loads(data))
        except (ValueError, TypeError):
            return None

    def describe(self, now: float) -> str:
        age = max(0.0, now - self.renewed_at)
        return f"run {self.run_id} (host {self.host}, pid {self.pid}, renewed {age:.0f} s ago)"


class LeaseStore(Protocol):
    """Compare-and-swap storage for one lease record; `version` is opaque (local: token, S3: etag)."""

    where: str

    def read(self) -> tuple[LeaseRecord | None, str] | None:
        """The record (None if unreadable) and its version, or None when there is no lease."""
        ...

    def create(self, record: LeaseRecord) -> str | None:
        """Write `record` if there is no lease; its version, or None if one exists."""
        ...

    def swap(self, record: LeaseRecord, expected: str) -> str | None:
        """Replace the lease if it is still at `expected`; the new version, or None if it changed."""
        ...

    def remove(self, expected: str) -> None:
        """Delete the lease if it is still at `expected`."""
        ...


class LocalLeaseFile:
    """`DIR/_lease.json` on a local (or shared POSIX) file system."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)

    def read(self) -> tuple[LeaseRecord | None, str] | None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        record = LeaseRecord.from_bytes(data)
        return record, record.token if record else f"unreadable:{hash(data)}"

    def create(self, record: LeaseRecord) -> str | None:
        # Written whole to a private file (O_CREAT|O_EXCL), then linked into place: link() fails if the
        # lease exists, so creation is exclusive, and no reader ever sees a half-written record.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{record.token}.new")
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(record.to_bytes())
                handle.flush()
                os.fsync(handle.fileno())
            os.link(tmp, self.path)
        except FileExistsError:
            return None
        finally:
            tmp.unlink(missing_ok=True)
        return record.token

    def swap(self, record: LeaseRecord, expected: str) -> str | None:
        current = self.read()
        if current is None or current[1] != expected:
            return None
        if current[0] is not None and current[0].token == record.token:  # a renewal: rewrite in place
            tmp = self.path.with_name(f".{self.path.name}.{record.token}.tmp")
            tmp.write_bytes(record.to_bytes())
            os.replace(tmp, self.path)
            return record.token
        # A takeover: move the stale record aside (only one waiter's rename can succeed), check it
        # is the one judged stale, then create ours exclusively.
        aside = self.path.with_name(f".{self.path.name}.{record.token}.stale")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return None
        moved = LeaseRecord.from_bytes(aside.read_bytes())
        if (moved.token if moved else None) != (current[0].token if current[0] else None):
            with suppress(FileExistsError):
                os.link(aside, self.path)  # not ours to take: put it back unless someone else already won
            aside.unlink(missing_ok=True)
            return None
        aside.unlink(missing_ok=True)
        return self.create(record)

    def remove(self, expected: str) -> None:
        current = self.read()
        if current is not None and current[1] == expected:
            self.path.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLease:
    """The lease on one DIR for one run; a context manager that renews it until released."""

    def __init__(self, store: LeaseStore, run_id: str, *, expiry_s: float = EXPIRY_S, renew_s: float = RENEW_S,
                 poll_s: float = POLL_S) -> None:
        self.store, self.run_id = store, run_id
        self.expiry_s, self.renew_s, self.poll_s = expiry_s, renew_s, poll_s
        self.record = LeaseRecord(run_id, socket.gethostname(), os.getpid(), uuid.uuid4().hex, time.time())
        self.version: str | None = None
        self.lost = False
        self._watched: tuple[str, float] | None = None  # (version, monotonic time first seen) of another's lease
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def try_acquire(self) -> LeaseRecord | None:
        """Take the lease if free, ours or stale; else the live holder's record."""
        self.record = replace(self.record, renewed_at=time.time())
        current = self.store.read()
        if current is None:
            self.version = self.store.create(self.record)
            return None if self.version else self.try_acquire()
        holder, version = current
        if holder is not None and holder.run_id != self.run_id and not self._stale(holder, version):
            return holder
        if holder is not None and holder.run_id != self.run_id:
            log.warning("taking over the lease on %s from %s: it expired", self.store.where,
                        holder.describe(time.time()))
        self.version = self.store.swap(self.record, version)
        return None if self.version else self.try_acquire()

    def _stale(self, holder: LeaseRecord, version: str) -> bool:
        now = time.monotonic()
        if self._watched is None or self._watched[0] != version:
            self._watched = (version, now)
        unchanged_for = now - self._watched[1]
        if holder.host == socket.gethostname() and not pid_alive(holder.pid):
            return True
        return time.time() - holder.renewed_at > self.expiry_s or unchanged_for > self.expiry_s

    def acquire(self, wait: bool = True, on_wait: Callable[[str], None] | None = None) -> None:
        """Hold the lease, waiting (and saying so every ~10 s) while another live run holds it."""
        said = 0.0
        while (holder := self.try_acquire()) is not None:
            message = (f"{self.store.where} is in use by {holder.describe(time.time())}; "
                       + ("waiting for it to finish" if wait else "not waiting (--no-wait)"))
            if not wait:
                raise LeaseBusy(message)
            if time.monotonic() - said >= RENEW_S:
                (on_wait or log.warning)(message)
                said = time.monotonic()
            time.sleep(self.poll_s)
        self._held.add(self)
        self._thread = threading.Thread(target=self._renew_loop, name=f"lease-{self.run_id}", daemon=True)
        self._thread.start()

    def renew(self) -> bool:
        if self.version is None:
            return False
        self.record = replace(self.record, renewed_at=time.time())
        self.version = self.store.swap(self.record, self.version)
        if self.version is None:
            self.lost = True
            log.error("lost the lease on %s: another run took it over (this run stalled past %.0f s)",
                      self.store.where, self.expiry_s)
        return self.version is not None

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.renew_s):
            try:
                if not self.renew():
                    return
            except OSError as error:  # a blip: the next renewal may work, the expiry is 6 renewals away
                log.warning("could not renew the lease on %s: %s", self.store.where, error)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._held.discard(self)
        if self.version is not None and not self.lost:
            with suppress(OSError):
                self.store.remove(self.version)
        self.version = None

    _held: set[RunLease] = set()  # noqa: RUF012 - every lease this process holds, for release_held_leases


def release_held_leases() -> None:
    """Release every lease this process holds (Ctrl-C: the run stops, the next one need not wait)."""
    for lease in list(RunLease._held):
        lease.release()


@contextmanager
def holding(lease: RunLease, wait: bool = True, on_wait: Callable[[str], None] | None = None) -> Iterator[RunLease]:
    lease.acquire(wait, on_wait)
    try:
        yield lease
    finally:
        lease.release()
