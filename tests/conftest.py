"""Shared fixtures. Prefect state lives in a temp dir; the API starts only for tests that ask."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

# Before anything imports prefect: keep its state out of ~/.prefect, offline and quiet.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="transcribe-all-test-prefect-")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("TRANSCRIBE_ALL_CACHE_DIR", tempfile.mkdtemp(prefix="transcribe-all-test-cache-"))

import pytest

ROOT = Path(__file__).resolve().parent.parent
SECRET = "moto-secret-never-logged"
EXAMPLES = ROOT / "examples" / "library"


@pytest.fixture(scope="session")
def example_library() -> Path:
    return EXAMPLES


@pytest.fixture(scope="session")
def references() -> dict[str, str]:
    with open(ROOT / "examples" / "references.tsv", encoding="utf-8") as handle:
        return {row["source"]: row["text"] for row in csv.DictReader(handle, delimiter="\t")}


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """A real Prefect API (the test harness's temporary server) for tests that run flows."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield str(PREFECT_API_URL.value())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(url: str, process: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {seconds} s")


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto's S3 server on a free loopback port, with dummy credentials in the environment."""
    port = _free_port()
    server = Path(sys.executable).with_name("moto_server")
    process = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        try:
            _wait_for(url + "/moto-api/", process)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture
def s3(moto_url: str) -> object:
    from tasks.media.s3 import S3Access, s3_client

    return s3_client(S3Access(endpoint_url=moto_url))


@pytest.fixture
def bucket(s3: object) -> str:
    name = f"media-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)  # type: ignore[attr-defined]
    return name


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)
