"""Every module's warnings reach the run's logs (what the Prefect UI shows), inline too.

The deployed path (a worker's flow-run process, a shard run's logs) is tested end to end in
tests/test_e2e_workers.py; a user's mistake as one line, without a traceback, at `--watch`
and in the logs, in tests/test_readme_workers.py. Here: the CLI's path, where the shards run
inside the parent flow run, and the filter on its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from flows.run_logs import ConfigErrorOneLine
from tasks.run_config import ConfigError
from tests.media_factory import SPEECH
from tests.prefect_loopback import ROOT

GARBLED_ERROR = "garbled.mp3 failed: decode failed: Invalid data found when processing input"


def corrupt_library(root: Path) -> Path:
    """Two good clips and an MP3 with garbage in its middle: it passes the scan's probe (its header is
    whole) and fails to decode in its shard."""
    root.mkdir()
    shutil.copy(SPEECH, root / "good.wav")
    shutil.copy(SPEECH.parent / "planning.flac", root / "good.flac")
    mp3 = bytearray((ROOT / "examples" / "library" / "lectures" / "history.mp3").read_bytes())
    middle, tenth = len(mp3) // 2, len(mp3) // 10
    mp3[middle:middle + tenth] = np.random.default_rng(7).bytes(tenth)
    (root / "garbled.mp3").write_bytes(mp3)
    return root


@pytest.mark.slow
def test_inline_runs_send_every_modules_warnings_to_their_run(prefect_api: str, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    from flows.transcribe_library import transcribe_library

    library = corrupt_library(tmp_path / "library")
    state = transcribe_library(source=str(library), out=str(tmp_path / "out"), engine="fake", return_state=True)
    run_id = state.state_details.flow_run_id
    APILogHandler().flush()  # the lines are sent in the background: send them now

    async def logs() -> list[str]:
        async with get_client() as client:
            found = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
            return [entry.message for entry in found]

    messages = asyncio.run(logs())
    assert [message for message in messages if "garbled.mp3" in message] == [GARBLED_ERROR], json.dumps(messages)


def test_a_config_error_is_logged_as_its_line_once() -> None:
    logger = logging.getLogger("test.run_logs")
    logger.propagate = False
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.addFilter(ConfigErrorOneLine())
    error = ConfigError("source: not a folder: /nonexistent")
    for message in ("Encountered exception during execution: %r", "Engine execution exited with unexpected exception"):
        try:
            raise error
        except ConfigError:
            logger.exception(message, error)
    try:
        raise RuntimeError("a bug")
    except RuntimeError:
        logger.exception("Encountered exception during execution")
    assert [record.getMessage() for record in seen] == [str(error), "Encountered exception during execution"]
    assert seen[0].exc_info is None and seen[1].exc_info is not None and seen[1].exc_info[0] is RuntimeError
    assert sys.exc_info() == (None, None, None)
