"""Shared fixtures. Prefect state lives in a temp dir; the API starts only for tests that ask."""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Before anything imports prefect: keep its state out of ~/.prefect, offline and quiet.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="transcribe-all-test-prefect-")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("TRANSCRIBE_ALL_CACHE_DIR", tempfile.mkdtemp(prefix="transcribe-all-test-cache-"))

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
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
