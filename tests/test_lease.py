"""The run lease: one run writes to DIR at a time; a dead holder's lease expires and is taken over.

Local leases on a real folder; S3 leases on moto's server (real conditional writes over HTTP).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from tasks.output.lease import LeaseBusy, LeaseRecord, LocalLeaseFile, RunLease, holding, release_held_leases


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def write_record(path: Path, **fields: object) -> None:
    record = {"run_id": "other-run", "host": socket.gethostname(), "pid": os.getpid(), "token": uuid.uuid4().hex,
              "renewed_at": time.time(), **fields}
    path.write_text(json.dumps(record))


def test_a_second_run_is_refused_at_once_with_one_line_naming_the_holder(tmp_path: Path) -> None:
    first = RunLease(LocalLeaseFile(tmp_path / "_lease.json"), "run-a")
    with holding(first):
        record = LeaseRecord.from_bytes((tmp_path / "_lease.json").read_bytes())
        assert record is not None and record.run_id == "run-a" and record.pid == os.getpid()
        with pytest.raises(LeaseBusy) as refused:
            RunLease(LocalLeaseFile(tmp_path / "_lease.json"), "run-b").acquire(wait=False)
        message = str(refused.value)
        assert "\n" not in message and "in use by run run-a" in message and "--no-wait" in message
    assert not (tmp_path / "_lease.json").exists(), "released on exit"
    with holding(RunLease(LocalLeaseFile(tmp_path / "_lease.json"), "run-b")):
        pass


def test_a_waiting_run_says_so_and_starts_when_the_holder_releases(tmp_path: Path) -> None:
    first = RunLease(LocalLeaseFile(tmp_path / "_lease.json"), "run-a")
    first.acquire()
    said: list[str] = []
    second = RunLease(LocalLeaseFile(tmp_path / "_lease.json"), "run-b", poll_s=0.05)
    waiter = threading.Thread(target=second.acquire, kwargs={"on_wait": said.append})
    waiter.start()
    deadline = time.monotonic() + 10
    while not said and time.monotonic() < deadline:
        time.sleep(0.05)
    assert waiter.is_alive() and said and "in use by run run-a" in said[0] and "waiting" in said[0]
    first.release()
    waiter.join(timeout=5)
    assert not waiter.is_alive() and second.version is not None
    assert json.loads((tmp_path / "_lease.json").read_text())["run_id"] == "run-b"
    second.release()


def test_the_holder_renews_so_a_live_lease_never_expires(tmp_path: Path) -> None:
    lease = RunLease(LocalLeaseFile(tmp_path / "_lease.json"), "run-a", renew_s=0.1, expiry_s=0.5)
    with holding(lease):
        first = json.loads((tmp_path / "_lease.json").read_text())["renewed_at"]
        deadline = time.monotonic() + 10
        while json.loads((tmp_path / "_lease.json").read_text())["renewed_at"] == first:
            assert time.monotonic() < deadline, "never renewed"
            time.sleep(0.05)
        assert lease.version is not None and not lease.lost


def test_an_expired_lease_is_taken_over(tmp_path: Path) -> None:
    write_record(tmp_path / "_lease.json", host="another-machine", renewed_at=time.time() - 120)
    lease = RunLease(LocalLeaseFile(tmp_path / "_lease.json"), "run-b")
    assert lease.try_acquire() is None
    assert json.loads((tmp_path / "_lease.json").read_text())["run_id"] == "run-b"


def test_a_lease_held_by_a_dead_pid_on_this_host_is_taken_over_at_once(tmp_path: Path) -> None:
    write_record(tmp_path / "_lease.json", pid=dead_pid())  # renewed just now, but its process is gone
    lease = RunLease(LocalLeaseFile(tmp_path / "_lease.json"), "run-b")
    started = time.monotonic()
    lease.acquire(wait=True)
    assert time.monotonic() - started < 3.0  # no waiting for the expiry (60 s)
    lease.release()


def test_a_lease_whose_clock_says_fresh_expires_by_the_waiters_own_watch(tmp_path: Path) -> None:
    """A holder on another machine whose clock runs ahead: its record never changes, so it expires."""
    write_record(tmp_path / "_lease.json", host="another-machine", renewed_at=time.time() + 3600)
    lease = RunLease(LocalLeaseFile(tmp_path / "_lease.json"), "run-b", expiry_s=0.3, poll_s=0.05)
    assert lease.try_acquire() is not None
    lease.acquire(wait=True)  # unchanged for longer than expiry_s while watched
    assert json.loads((tmp_path / "_lease.json").read_text())["run_id"] == "run-b"
    lease.release()


def test_the_same_run_takes_its_own_lease_back(tmp_path: Path) -> None:
    """A retried flow run (same run id) on another worker writes under its own lease."""
    write_record(tmp_path / "_lease.json", run_id="run-a", host="another-machine")
    assert RunLease(LocalLeaseFile(tmp_path / "_lease.json"), "run-a").try_acquire() is None


def test_of_many_waiters_taking_over_a_stale_lease_exactly_one_wins(tmp_path: Path) -> None:
    for _ in range(5):
        write_record(tmp_path / "_lease.json", host="another-machine", renewed_at=time.time() - 120)
        leases = [RunLease(LocalLeaseFile(tmp_path / "_lease.json"), f"run-{n}") for n in range(6)]
        barrier = threading.Barrier(len(leases))
        results: dict[str, object] = {}

        def take(lease: RunLease, barrier: threading.Barrier, results: dict[str, object]) -> None:
            barrier.wait()
            results[lease.run_id] = lease.try_acquire()

        threads = [threading.Thread(target=take, args=(lease, barrier, results)) for lease in leases]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [run for run, holder in results.items() if holder is None]
        assert len(winners) == 1, results
        assert json.loads((tmp_path / "_lease.json").read_text())["run_id"] == winners[0]
        (tmp_path / "_lease.json").unlink()


def test_a_taken_over_holder_notices_and_does_not_release_the_new_lease(tmp_path: Path) -> None:
    stalled = RunLease(LocalLeaseFile(tmp_path / "_lease.json"), "run-a", renew_s=3600)
    stalled.acquire()
    record = json.loads((tmp_path / "_lease.json").read_text())
    (tmp_path / "_lease.json").write_text(json.dumps({**record, "renewed_at": time.time() - 120}))
    taker = RunLease(LocalLeaseFile(tmp_path / "_lease.json"), "run-b")
    assert taker.try_acquire() is None
    assert stalled.renew() is False and stalled.lost
    stalled.release()
    assert json.loads((tmp_path / "_lease.json").read_text())["run_id"] == "run-b"
    release_held_leases()


def test_release_held_leases_frees_dir_for_the_next_run(tmp_path: Path) -> None:
    RunLease(LocalLeaseFile(tmp_path / "_lease.json"), "run-a").acquire()
    release_held_leases()
    assert not (tmp_path / "_lease.json").exists()


# --- S3: conditional writes on moto's server ----------------------------------------------------


def s3_lease(s3: object, bucket: str, run_id: str, **timing: float) -> RunLease:
    from tasks.output.lease_s3 import S3LeaseObject

    return RunLease(S3LeaseObject(s3, bucket, "out/_lease.json"), run_id, **timing)


def test_s3_conditional_writes_make_a_lease(s3: object, bucket: str) -> None:
    from tasks.output.lease_s3 import S3LeaseObject

    store = S3LeaseObject(s3, bucket, "out/_lease.json")
    record = LeaseRecord("run-a", "h", 1, "t1", time.time())
    etag = store.create(record)
    assert etag and store.create(LeaseRecord("run-b", "h", 2, "t2", time.time())) is None  # If-None-Match: *
    assert store.swap(LeaseRecord("run-c", "h", 3, "t3", time.time()), '"not-the-etag"') is None  # If-Match
    renewed = store.swap(LeaseRecord("run-a", "h", 1, "t1", time.time()), etag)
    assert renewed and renewed != etag and store.swap(record, etag) is None  # the old etag is spent
    current = store.read()
    assert current is not None and current[0] is not None and current[0].run_id == "run-a"


def test_s3_lease_busy_renewed_expired_and_taken_over(s3: object, bucket: str) -> None:
    holder = s3_lease(s3, bucket, "run-a", renew_s=0.2)
    with holding(holder):
        with pytest.raises(LeaseBusy, match="s3://.*/out/_lease.json is in use by run run-a"):
            s3_lease(s3, bucket, "run-b").acquire(wait=False)
        first = holder.version
        deadline = time.monotonic() + 10
        while holder.version == first:  # renewed by its thread: a new etag each time
            assert time.monotonic() < deadline, "never renewed"
            time.sleep(0.05)
        assert not holder.lost and s3_lease(s3, bucket, "run-b").try_acquire() is not None
    assert all(not k["Key"].endswith("_lease.json")
               for k in s3.list_objects_v2(Bucket=bucket).get("Contents", []))  # type: ignore[attr-defined]

    dead = s3_lease(s3, bucket, "run-dead", renew_s=3600)  # acquires, then never renews: a lost machine
    dead.acquire()
    waiter = s3_lease(s3, bucket, "run-c", expiry_s=0.5, poll_s=0.1)
    started = time.monotonic()
    waiter.acquire(wait=True)
    assert time.monotonic() - started < 10  # expired by its own clock or by the waiter's watch, whichever first
    assert dead.renew() is False  # its etag is gone: it knows it lost the lease
    dead.release()  # and leaves the new holder's lease alone
    assert s3_lease(s3, bucket, "run-d").try_acquire() is not None
    waiter.release()
