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
- distrust: a record that does not parse into plausible values (tasks/output/lease_record.py)
  is a dead holder's: it expires `expiry_s` after the storage last wrote it (file mtime,
  S3 LastModified), and is then taken over with one warning line. A renewal time in the
  future counts as the time the record was written, so it expires like any other. A
  lease that is not a regular file (a FIFO, a folder) is one error line at once.

A second run waits, saying who holds DIR, or with `wait=False` stops at once with one line.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace

from tasks.output.lease_local import LocalLeaseFile
from tasks.output.lease_record import Holder, LeaseBusy, LeaseError, LeaseRead, LeaseRecord, LeaseStore

__all__ = ["Holder", "LeaseBusy", "LeaseError", "LeaseRead", "LeaseRecord", "LeaseStore", "LocalLeaseFile",
           "RunLease", "holding", "release_held_leases"]

log = logging.getLogger(__name__)

RENEW_S = 10.0
EXPIRY_S = 60.0
POLL_S = 2.0
ROUNDS = 50  # compare-and-swap rounds lost in a row before giving up (others keep taking it first)


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
        self._warned: str | None = None  # the version whose takeover was announced
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def try_acquire(self) -> Holder | None:
        """Take the lease if free, ours or stale; else who holds it (a live run, or a record still fresh)."""
        for _ in range(ROUNDS):
            self.record = replace(self.record, renewed_at=time.time())
            current = self.store.read()
            if current is None:
                self.version = self.store.create(self.record)
            else:
                holder = Holder.of(current.record, current.written_at, time.time())
                ours = current.record is not None and current.record.run_id == self.run_id
                if not ours and not self._stale(holder, current.version):
                    return holder
                if not ours:
                    self._say_taking_over(holder, current)
                self.version = self.store.swap(self.record, current.version)
            if self.version is not None:
                return None
        raise LeaseError(f"could not take the lease on {self.store.where}: it changed {ROUNDS} times while this"
                         " run tried to take it; try again")

    def _stale(self, holder: Holder, version: str) -> bool:
        now = time.monotonic()
        if self._watched is None or self._watched[0] != version:
            self._watched = (version, now)
        unchanged_for = now - self._watched[1]
        record = holder.record
        if record is not None and record.host == socket.gethostname() and not pid_alive(record.pid):
            return True
        return holder.age_s > self.expiry_s or unchanged_for > self.expiry_s

    def _say_taking_over(self, holder: Holder, current: LeaseRead) -> None:
        if self._warned == current.version:  # one line, even if another waiter wins this round
            return
        self._warned = current.version
        if holder.record is None:
            log.warning("taking over the lease on %s: it is not a valid lease record (last written %.0f s ago)",
                        self.store.where, holder.age_s)
        else:
            log.warning("taking over the lease on %s from %s: it expired", self.store.where, holder.describe())

    def acquire(self, wait: bool = True, on_wait: Callable[[str], None] | None = None) -> None:
        """Hold the lease, waiting (and saying so every ~10 s) while another live run holds it."""
        said = 0.0
        while (holder := self.try_acquire()) is not None:
            message = self._busy_message(holder, wait)
            if not wait:
                raise LeaseBusy(message)
            if said == 0.0 or (holder.record is not None and time.monotonic() - said >= RENEW_S):
                (on_wait or log.warning)(message)  # an invalid record: said once, it cannot change its mind
                said = time.monotonic()
            time.sleep(self.poll_s)
        self._held.add(self)
        self._thread = threading.Thread(target=self._renew_loop, name=f"lease-{self.run_id}", daemon=True)
        self._thread.start()

    def _busy_message(self, holder: Holder, wait: bool) -> str:
        then = "waiting for it to finish" if wait else "not waiting (--no-wait)"
        if holder.record is None:
            return (f"{self.store.where} holds {holder.describe()}; it counts as held until {self.expiry_s:.0f} s"
                    f" after that, then it is taken over; {then}")
        return f"{self.store.where} is in use by {holder.describe()}; {then}"

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
            except (OSError, LeaseError) as error:  # a blip: the next renewal may work, the expiry is 6 renewals away
                log.warning("could not renew the lease on %s: %s", self.store.where, error)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._held.discard(self)
        if self.version is not None and not self.lost:
            with suppress(OSError, LeaseError):
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
