"""What a run lease holds, and how a record read back is judged (tasks/output/lease.py uses it).

A lease file is written by this program, but anything can end up there: a hand edit, a
torn copy, another version's format, a file of zeros. Nothing in it is trusted: a record
whose fields are not plausible (a pid that cannot be one, a time that is not a number, a
name with a newline) is no record at all, and an unreadable lease is judged only by when
the storage says it was last written, never by what it says about itself.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple, Protocol, TypeGuard

MAX_LEASE_BYTES = 64 * 1024  # a real record is ~200 bytes; more is not read
MAX_PID = 1 << 22  # Linux's largest pid_max; other systems' are smaller
_NAME_CHARS = 256


class LeaseError(RuntimeError):
    """The lease on DIR cannot be taken; the message is one line that says what to do."""


class LeaseBusy(LeaseError):
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
        """The record, or None for anything that does not parse into plausible values."""
        if len(data) > MAX_LEASE_BYTES:
            return None
        try:
            fields = json.loads(data)
        except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested past the parser's depth
            return None
        if not isinstance(fields, dict):
            return None
        run_id, host, pid, token, renewed_at = (fields.get(key) for key in ("run_id", "host", "pid", "token",
                                                                            "renewed_at"))
        if not (_plausible_name(run_id) and _plausible_name(host) and _plausible_name(token) and _plausible_pid(pid)):
            return None
        when = _plausible_time(renewed_at)
        return None if when is None else LeaseRecord(run_id, host, pid, token, when)


def _plausible_name(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and 0 < len(value) <= _NAME_CHARS and value.isprintable()


def _plausible_pid(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_PID


def _plausible_time(value: Any) -> float | None:
    """Seconds since the epoch as a finite, non-negative float (a time in the future is judged later)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        when = float(value)
    except OverflowError:  # an integer past float's range
        return None
    return when if math.isfinite(when) and when >= 0 else None


class LeaseRead(NamedTuple):
    """A lease as read: its record (None if it is not a valid one), its version, when it was written."""

    record: LeaseRecord | None
    version: str  # opaque: compare-and-swap against it (local: token or content hash; S3: etag)
    written_at: float  # the storage's clock (file mtime, S3 LastModified), seconds since the epoch


@dataclass(frozen=True, slots=True)
class Holder:
    """Whoever holds a lease another run wants: a valid record, or an unreadable one, and its age."""

    record: LeaseRecord | None
    age_s: float  # since it was last renewed; a time in the future counts as now

    @staticmethod
    def of(record: LeaseRecord | None, written_at: float, now: float) -> Holder:
        renewed = record.renewed_at if record is not None and record.renewed_at <= now else min(written_at, now)
        return Holder(record, max(0.0, now - renewed))

    def describe(self) -> str:
        if self.record is None:
            return f"a lease that is not a valid record (last written {self.age_s:.0f} s ago)"
        record = self.record
        return f"run {record.run_id} (host {record.host}, pid {record.pid}, renewed {self.age_s:.0f} s ago)"


class LeaseStore(Protocol):
    """Compare-and-swap storage for one lease record."""

    where: str

    def read(self) -> LeaseRead | None:
        """The lease, or None when there is none."""
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
