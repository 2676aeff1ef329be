"""Lease files nobody should have written: garbage, impossible values, future times, FIFOs.

Each case is what a user found (issue 19): the run must proceed or stop with one line,
never a traceback, never a hang, never a DIR stuck until someone deletes the lease.
The property test throws arbitrary contents at the lease API with short expiry windows;
the CLI cases run `transcribe-all run` as a user does, with the fake engine.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.output.lease import LeaseBusy, LeaseError, LocalLeaseFile, RunLease, holding

ROOT = Path(__file__).resolve().parent.parent
GARBAGE = [
    {"renewed_at": "yesterday"},
    {"pid": 99999999999999},
    {"pid": 0},  # os.kill(0, 0) would ask about our own process group: always "alive"
    {"pid": -1},
    {"pid": True},
    {"renewed_at": float("nan")},
    {"renewed_at": 10**400},
    {"run_id": "two\nlines"},
    {"host": None},
]


def lease_bytes(**fields: object) -> bytes:
    record = {"run_id": "other-run", "host": socket.gethostname(), "pid": os.getpid(), "token": uuid.uuid4().hex,
              "renewed_at": time.time(), **fields}
    return json.dumps(record).encode()


def plant(path: Path, data: bytes, age_s: float = 0.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    then = time.time() - age_s
    os.utime(path, (then, then))


def acquire_within(lease: RunLease, seconds: float, wait: bool = True) -> BaseException | None:
    """Acquire in a thread; the error it raised, None if it holds the lease; fails the test on a hang."""
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            lease.acquire(wait=wait)
            outcome.append(None)
        except BaseException as error:  # noqa: BLE001 - the test inspects whatever it was
            outcome.append(error)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"acquire hung for {seconds} s"
    return outcome[0]


@pytest.mark.parametrize("fields", GARBAGE, ids=lambda f: json.dumps(f, default=str)[:40])
def test_an_old_invalid_lease_is_taken_over_at_once_with_one_warning(
    fields: dict[str, object], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plant(tmp_path / "_lease.json", lease_bytes(**fields), age_s=120)
    lease = RunLease(LocalLeaseFile(tmp_path / "_lease.json"), "run-b")
    with caplog.at_level(logging.WARNING, logger="tasks.output.lease"):
        assert acquire_within(lease, 5, wait=False) is None
    assert json.loads((tmp_path / "_lease.json").read_text())["run_id"] == "run-b"
    (line,) = [r.getMessage() for r in caplog.records]
    assert "taking over" in line and "not a valid lease record" in line and "\n" not in line
    lease.release()


def test_a_fresh_invalid_lease_counts_as_held_until_the_expiry_window_passes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plant(tmp_path / "_lease.json", b'{"renewed_at": "yesterday"}')
    with pytest.raises(LeaseBusy) as refused:
        RunLease(LocalLeaseFile(tmp_path / "_lease.json"), "run-b", expiry_s=0.5).acquire(wait=False)
    assert "\n" not in str(refused.value) and "not a valid record" in str(refused.value)
    lease = RunLease(LocalLeaseFile(tmp_path / "_lease.json"), "run-c", expiry_s=0.5, poll_s=0.05)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="tasks.output.lease"):
        assert acquire_within(lease, 10) is None
    assert 0.4 <= time.monotonic() - started < 5
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "waiting" in lines[0] and "taking over" in lines[1], lines  # said once, not per poll
    lease.release()


def test_a_renewal_time_in_the_future_counts_as_when_it_was_written(tmp_path: Path) -> None:
    """A live pid, renewed_at a year ahead: --no-wait refuses while the record is fresh, then it expires."""
    path = tmp_path / "_lease.json"
    plant(path, lease_bytes(renewed_at=time.time() + 365 * 86400))
    with pytest.raises(LeaseBusy, match="renewed 0 s ago"):
        RunLease(LocalLeaseFile(path), "run-b").acquire(wait=False)
    plant(path, path.read_bytes(), age_s=61)  # nobody renewed it for a minute
    with pytest.raises(LeaseBusy, match="renewed 61 s ago"):
        RunLease(LocalLeaseFile(path), "run-b", expiry_s=3600).acquire(wait=False)
    with holding(RunLease(LocalLeaseFile(path), "run-b"), wait=False):  # a fresh process: no watch of its own
        assert json.loads(path.read_text())["run_id"] == "run-b"


def test_a_live_holder_that_renews_is_never_taken_over_by_a_watching_waiter(tmp_path: Path) -> None:
    """The waiter's watch restarts at every renewal: a local record's version is its bytes, not its token."""
    holder = RunLease(LocalLeaseFile(tmp_path / "_lease.json"), "run-a", renew_s=0.05, expiry_s=0.3)
    with holding(holder):
        waiter = RunLease(LocalLeaseFile(tmp_path / "_lease.json"), "run-b", expiry_s=0.3)
        deadline = time.monotonic() + 1.5  # five expiry windows of watching
        while time.monotonic() < deadline:
            assert waiter.try_acquire() is not None
            time.sleep(0.02)
        assert not holder.lost


@pytest.mark.parametrize("kind", ["fifo", "folder", "symlink", "dangling"])
@pytest.mark.parametrize("wait", [True, False])
def test_a_lease_that_is_not_a_regular_file_is_one_error_at_once(tmp_path: Path, kind: str, wait: bool) -> None:
    path = tmp_path / "_lease.json"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    else:
        target = tmp_path / "elsewhere.json"
        if kind == "symlink":
            target.write_bytes(lease_bytes(renewed_at=0))
        path.symlink_to(target)
    error = acquire_within(RunLease(LocalLeaseFile(path), "run-b", poll_s=0.05), 5, wait=wait)
    assert isinstance(error, LeaseError) and not isinstance(error, LeaseBusy)
    message = str(error)
    assert "\n" not in message and "is not a regular file" in message and "remove it" in message


# --- the property: any contents, any age → proceed or one line, never another exception or a hang ----------

_ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_TIMES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, -1, 1e300, 2**63]), st.floats(-1e6, 1e6).map(lambda delta: time.time() + delta),
    _ANY_JSON,
)
_PIDS = st.one_of(st.integers(), st.sampled_from([0, -1, 1, os.getpid(), 2**22, 2**22 + 1, 2**31, 99999999999999]),
                  _ANY_JSON)
_NAMES = st.one_of(st.text(max_size=300), _ANY_JSON, st.just(socket.gethostname()))


@st.composite
def _records(draw: st.DrawFn) -> bytes:
    fields = {"run_id": draw(_NAMES), "host": draw(st.sampled_from([socket.gethostname(), "elsewhere"]) | _NAMES),
              "pid": draw(_PIDS), "token": draw(_NAMES), "renewed_at": draw(_TIMES)}
    kept = {k: v for k, v in fields.items() if draw(st.booleans()) or k in ("pid", "renewed_at")}
    extra = draw(st.dictionaries(st.text(max_size=8), _ANY_JSON, max_size=2))
    return json.dumps({**extra, **kept}, allow_nan=True).encode()


_CONTENTS = st.one_of(
    st.binary(max_size=300), _records(), _ANY_JSON.map(lambda v: json.dumps(v).encode()),
    st.integers(1, 5000).map(lambda depth: b"[" * depth + b"]" * depth),  # nested past the parser's depth
    st.just(b"0" * 70_000),  # bigger than any record
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(contents=_CONTENTS, age_s=st.sampled_from([-3600.0, 0.0, 0.1, 120.0, 1e9]), wait=st.booleans())
def test_any_lease_contents_proceed_or_stop_with_one_line(
    tmp_path_factory: pytest.TempPathFactory, contents: bytes, age_s: float, wait: bool
) -> None:
    folder = tmp_path_factory.mktemp("lease")
    plant(folder / "_lease.json", contents, age_s=age_s)
    lease = RunLease(LocalLeaseFile(folder / "_lease.json"), "run-b", expiry_s=0.2, poll_s=0.02)
    error = acquire_within(lease, 10, wait=wait)
    try:
        if error is None:
            assert json.loads((folder / "_lease.json").read_text())["run_id"] == "run-b"
        else:
            assert isinstance(error, LeaseBusy) and not wait, repr(error)
            assert "\n" not in str(error) and "--no-wait" in str(error)
    finally:
        lease.release()
        shutil.rmtree(folder, ignore_errors=True)


# --- S3: the same judgement of an object's contents ---------------------------------------------


def test_s3_garbage_lease_expires_by_its_last_modified_time(s3: object, bucket: str,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    from tasks.output.lease_s3 import S3LeaseObject

    s3.put_object(Bucket=bucket, Key="out/_lease.json", Body=b'{"renewed_at": "yesterday", "pid": -1}')  # type: ignore[attr-defined]
    with pytest.raises(LeaseBusy, match="not a valid record"):
        RunLease(S3LeaseObject(s3, bucket, "out/_lease.json"), "run-b", expiry_s=30).acquire(wait=False)
    lease = RunLease(S3LeaseObject(s3, bucket, "out/_lease.json"), "run-c", expiry_s=0.5, poll_s=0.1)
    with caplog.at_level(logging.WARNING, logger="tasks.output.lease"):
        assert acquire_within(lease, 15) is None
    assert sum("taking over" in r.getMessage() for r in caplog.records) == 1
    body = s3.get_object(Bucket=bucket, Key="out/_lease.json")["Body"].read()  # type: ignore[attr-defined]
    assert json.loads(body)["run_id"] == "run-c"
    lease.release()


# --- the CLI, as a user runs it ------------------------------------------------------------------


def transcribe_all(
    library: Path, out: Path, api: str, *extra: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).with_name("transcribe-all")), "run", str(library), "--out", str(out),
               "--engine", "fake", "--canary", "off", *extra]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=timeout, check=False,
                          env={**os.environ, "PREFECT_API_URL": api})


@pytest.fixture
def small_library(tmp_path: Path, example_library: Path) -> Path:
    library = tmp_path / "library"
    library.mkdir()
    for name in ("meetings/standup.wav", "podcasts/episode one.opus"):
        shutil.copy(example_library / name, library / Path(name).name)
    return library


@pytest.mark.slow
def test_cli_takes_over_garbage_leases_and_stops_at_a_fifo_in_one_line(
    prefect_api: str, tmp_path: Path, small_library: Path
) -> None:
    out = tmp_path / "out"
    for n, fields in enumerate([{"renewed_at": "yesterday"}, {"pid": 99999999999999}]):
        plant(out / "_lease.json", lease_bytes(**fields), age_s=300)  # left there by a run long gone
        done = transcribe_all(small_library, out, prefect_api, "--no-wait")
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
        warnings = [line for line in done.stderr.splitlines() if "lease" in line]
        assert len(warnings) == 1 and "not a valid lease record" in warnings[0], done.stderr
        assert ("2 ok" if n == 0 else "0 ok, 0 failed, 2 skipped") in done.stdout
        assert not (out / "_lease.json").exists()
    os.mkfifo(out / "_lease.json")
    for extra in ((), ("--no-wait",)):
        started = time.monotonic()
        stopped = transcribe_all(small_library, out, prefect_api, *extra, timeout=120)
        assert stopped.returncode == 1 and "Traceback" not in stopped.stderr, stopped.stderr[-3000:]
        (line,) = [line for line in stopped.stderr.splitlines() if "run failed" in line]
        assert "is not a regular file (a FIFO)" in line, stopped.stderr
        assert time.monotonic() - started < 100
