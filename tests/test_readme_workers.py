"""The README's "Many workers" block, run as a user would: server, pools, deploy, workers, run.

Only three things change: the port (a free one), the output folder (a temp dir) and the
install line (the test's environment has the package already; reinstalling would move
the editable install). Then: the user's `shards: 2` ran two shards, the CPU pool was
priced as a CPU, and a second run with a wrong parameter fails within seconds with the
one-line message as its state.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from tests.prefect_loopback import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def readme_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- many-workers:begin -->\n```bash\n(.*?)```\n<!-- many-workers:end -->", text, re.DOTALL)
    assert block, "README: the many-workers block is gone"
    return block.group(1)


def flow_runs(api: str, flow_name: str) -> list[dict[str, object]]:
    body = json.dumps({"flows": {"name": {"any_": [flow_name]}}, "limit": 50}).encode()
    request = urllib.request.Request(f"{api}/flow_runs/filter", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        runs: list[dict[str, object]] = json.loads(response.read())
    return runs


def test_the_readme_many_workers_block_runs_as_written(tmp_path: Path) -> None:
    port, out = free_port(), tmp_path / "transcripts"
    script = readme_block()
    assert "PORT=4200" in script and "/tmp/transcripts" in script
    script = script.replace("PORT=4200", f"PORT={port}").replace("/tmp/transcripts", str(out))
    script = re.sub(r"^pip install .*$", "true  # installed already", script, flags=re.MULTILINE)
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "PREFECT_HOME": tempfile.mkdtemp(),
           "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false", "PREFECT_WORKER_QUERY_SECONDS": "2",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    env.pop("PREFECT_API_URL", None)
    log = tmp_path / "block.log"
    # One process group for the block and what it starts in the background, so the test can end them all.
    with log.open("wb") as sink:
        shell = subprocess.Popen(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env, stdout=sink,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    api = f"http://127.0.0.1:{port}/api"
    try:
        assert shell.wait(timeout=900) == 0, log.read_text(errors="replace")[-4000:]
        runs = pd.read_parquet(out / "runs")
        assert len(runs) == 1
        row = runs.iloc[0]
        assert (row["files_ok"], row["hardware"]) == (6, "cpu")
        # priced as the cpu profile's instance, for the time the pool's worker was held
        assert row["cost_usd"] == pytest.approx(row["worker_hours"] * row["price_per_hour_usd"]) and row["cost_usd"] > 0
        shard_runs = flow_runs(api, "transcribe-shard")
        assert len(shard_runs) == 2 and all(r["state_type"] == "COMPLETED" for r in shard_runs)
        assert len(list((out / "_plans").rglob("shard-*.parquet"))) == 2

        # A contradiction fails the run at once, naming the parameters, in one line.
        started = time.monotonic()
        wrong = subprocess.run(
            [BIN / "prefect", "deployment", "run", "transcribe-library/nightly", "--watch", "--params",
             json.dumps({"source": str(ROOT / "examples/library"), "out": str(out), "pool": "cpu", "shards": 2,
                         "shard_minutes": 5})],
            cwd=ROOT, env={**env, "PREFECT_API_URL": api}, capture_output=True, text=True, timeout=300, check=False)
        assert wrong.returncode != 0 and time.monotonic() - started < 60
        failed = [r for r in flow_runs(api, "transcribe-library") if r["state_type"] == "FAILED"]
        assert len(failed) == 1
        message = str(failed[0]["state"]["message"])  # type: ignore[index]
        assert "shards and shard_minutes: give one or the other" in message and "\n" not in message
    finally:
        try:
            os.killpg(shell.pid, signal.SIGKILL)  # the server and workers the block left in the background
        except ProcessLookupError:
            pass
