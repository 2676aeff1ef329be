"""The run lease as a local file, `DIR/_lease.json` (on a local or shared POSIX file system).

Never opened blind: a FIFO there would block a plain `open()` for ever, and a device or a
folder is no lease either. It is `lstat`ed first and opened with O_NONBLOCK | O_NOFOLLOW;
anything but a regular file is a `LeaseError` (one line) at once. A record's version is
the hash of its bytes, so every renewal is a new version a waiter can see.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tasks.output.lease_record import MAX_LEASE_BYTES, LeaseError, LeaseRead, LeaseRecord


class LocalLeaseFile:
    """`DIR/_lease.json`: created by link(), replaced by rename(), both atomic, under one lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)

    def read(self) -> LeaseRead | None:
        got = _read_regular(self.path, self.where)
        if got is None:
            return None
        data, written_at = got
        return LeaseRead(LeaseRecord.from_bytes(data), _version(data), written_at)

    def create(self, record: LeaseRecord) -> str | None:
        with self._locked():
            return self._create(record)

    def swap(self, record: LeaseRecord, expected: str) -> str | None:
        """Replace the lease if it is still at `expected`: a renewal, or a takeover of a stale one."""
        with self._locked():
            current = self.read()
            if current is None or current.version != expected:
                return None
            data = record.to_bytes()
            tmp = self.path.with_name(f".{self.path.name}.{record.token}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, self.path)
            return _version(data)

    def remove(self, expected: str) -> None:
        with self._locked():
            current = self.read()
            if current is not None and current.version == expected:
                self.path.unlink(missing_ok=True)

    def _create(self, record: LeaseRecord) -> str | None:
        # Written whole to a private file (O_CREAT|O_EXCL), then linked into place: link() fails if the
        # lease exists, so creation is exclusive, and no reader ever sees a half-written record.
        tmp = self.path.with_name(f".{self.path.name}.{record.token}.new")
        data = record.to_bytes()
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.link(tmp, self.path)
        except FileExistsError:
            return None
        finally:
            tmp.unlink(missing_ok=True)
        return _version(data)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Every change under one exclusive lock (flock on `.{name}.lock` beside it), so a check and the
        change it allows cannot interleave with another waiter's: without it, a waiter that moved a fresh
        record aside to check it let a third create its own before the record went back (two winners)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.path.with_name(f".{self.path.name}.lock")
        try:
            fd = os.open(lock, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        except OSError as error:
            raise LeaseError(f"{lock}: cannot open the lease's lock file ({error.strerror}); remove it") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def _read_regular(path: Path, where: str) -> tuple[bytes, float] | None:
    """The file's first bytes (enough for any real record) and its mtime; None if there is none."""
    try:
        if not stat.S_ISREG((info := os.lstat(path)).st_mode):
            raise LeaseError(_not_regular(where, info.st_mode))
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as error:
        if error.errno == errno.ELOOP:  # replaced by a symlink since the lstat
            raise LeaseError(_not_regular(where, stat.S_IFLNK)) from error
        raise
    with os.fdopen(fd, "rb") as handle:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise LeaseError(_not_regular(where, opened.st_mode))
        return handle.read(MAX_LEASE_BYTES + 1), opened.st_mtime


def _not_regular(where: str, mode: int) -> str:
    kinds = [(stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"), (stat.S_ISLNK, "a symbolic link")]
    kind = next((name for test, name in kinds if test(mode)), "not a plain file")
    return f"{where} is not a regular file ({kind}): it cannot be a run lease; remove it, or choose another --out"
