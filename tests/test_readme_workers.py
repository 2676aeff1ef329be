"""The README's "Many workers" block, run as a user would: PostgreSQL, server, pools, deploy, workers, run;
then its stop block, in the same shell.

Only these change: the ports (free ones), the output folder (a temp dir) and the install line
(the test's environment has the package already; reinstalling would move the editable install).
Then: the user's `shards: 2` ran two shards, the CPU pool was priced as a CPU, the server's
database is PostgreSQL and its log holds no "database is locked"; a wrong parameter and a
missing source each fail their run within seconds with one line as the state message, the
line that `--watch` shows and the run's logs hold, without a traceback. The stop block ends
the server, the workers and the database.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pandas as pd
import psutil
import pytest

from tests.prefect_loopback import free_port
from tests.test_cli import direct_texts

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DONE = "README-BLOCK-DONE"


def readme_block(name: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(rf"<!-- {name}:begin -->\n```bash\n(.*?)```\n<!-- {name}:end -->", text, re.DOTALL)
    assert block, f"README: the {name} block is gone"
    return block.group(1)


def api_post(api: str, path: str, body: dict[str, object]) -> list[dict[str, object]]:
    request = urllib.request.Request(f"{api}/{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        found: list[dict[str, object]] = json.loads(response.read())
    return found


def flow_runs(api: str, flow_name: str) -> list[dict[str, object]]:
    return api_post(api, "flow_runs/filter", {"flows": {"name": {"any_": [flow_name]}}, "limit": 50})


def wait_for_line(log: Path, line: str, shell: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while line not in log.read_text(errors="replace"):
        assert shell.poll() is None, log.read_text(errors="replace")[-4000:]
        assert time.monotonic() < deadline, log.read_text(errors="replace")[-4000:]
        time.sleep(1)


def test_the_readme_many_workers_block_runs_as_written(tmp_path: Path) -> None:
    port, pg_port, out = free_port(), free_port(), tmp_path / "transcripts"
    script, stop = readme_block("many-workers"), readme_block("many-workers-stop")
    assert "PORT=4200 PGPORT=5433" in script and "/tmp/transcripts" in script
    script = script.replace("PORT=4200 PGPORT=5433", f"PORT={port} PGPORT={pg_port}")
    script = script.replace("/tmp/transcripts", str(out))
    script = re.sub(r"^pip install .*$", "true  # installed already", script, flags=re.MULTILINE)
    go_on = tmp_path / "go-on"
    os.mkfifo(go_on)
    # the block, then (when the test says so) the stop block, in the same shell
    script = f"{script}\necho {DONE}\nread -r _ < {go_on}\n{stop}"
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "PREFECT_HOME": tempfile.mkdtemp(),
           "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false", "PREFECT_WORKER_QUERY_SECONDS": "2",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    env.pop("PREFECT_API_URL", None)
    log = tmp_path / "block.log"
    with log.open("wb") as sink:
        shell = subprocess.Popen(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env, stdout=sink,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    api = f"http://127.0.0.1:{port}/api"
    try:
        wait_for_line(log, DONE, shell, timeout_s=900)
        runs = pd.read_parquet(out / "runs")
        assert len(runs) == 1
        row = runs.iloc[0]
        assert (row["files_ok"], row["hardware"]) == (6, "cpu")
        rows = pd.read_parquet(out / "manifest")  # the pool path costs no WER either: a direct call's texts
        assert dict(zip(rows["source"], rows["text"], strict=True)) == direct_texts(ROOT / "examples" / "library")
        # priced as the cpu profile's instance, for the time the pool's worker was held
        assert row["cost_usd"] == pytest.approx(row["worker_hours"] * row["price_per_hour_usd"]) and row["cost_usd"] > 0
        shard_runs = flow_runs(api, "transcribe-shard")
        assert len(shard_runs) == 2 and all(r["state_type"] == "COMPLETED" for r in shard_runs)
        assert len(list((out / "_plans").rglob("shard-*.parquet"))) == 2
        server = [p for p in psutil.Process(shell.pid).children(recursive=True) if "server" in p.cmdline()]
        assert server and "postgresql+asyncpg://" in server[0].environ()["PREFECT_API_DATABASE_CONNECTION_URL"]

        # A user's mistake fails the run at once, in one line: the state message, --watch, the logs.
        for params, line in (
            ({"source": str(ROOT / "examples/library"), "out": str(out), "pool": "cpu", "shards": 2,
              "shard_minutes": 5}, "shards and shard_minutes: give one or the other"),
            ({"source": "/nonexistent", "out": str(out), "pool": "cpu"}, "source: not a folder: /nonexistent"),
        ):
            started = time.monotonic()
            wrong = subprocess.run(
                [BIN / "prefect", "deployment", "run", "transcribe-library/nightly", "--watch", "--params",
                 json.dumps(params)], cwd=ROOT, env={**env, "PREFECT_API_URL": api, "COLUMNS": "200"},
                capture_output=True, text=True, timeout=300, check=False)
            assert wrong.returncode == 1 and time.monotonic() - started < 60, wrong.stdout[-3000:]
            assert line in wrong.stdout, wrong.stdout[-3000:]  # --watch shows why
            run_id = wrong.stdout.split("UUID: ", 1)[1].split()[0]
            [failed] = api_post(api, "flow_runs/filter", {"flow_runs": {"id": {"any_": [run_id]}}})
            message = str(failed["state"]["message"])  # type: ignore[index]
            assert failed["state_type"] == "FAILED" and line in message and "\n" not in message
            logs = [str(e["message"]) for e in api_post(api, "logs/filter", {
                "logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200})]
            assert logs.count(line) == 1 and not any("Traceback" in entry for entry in logs), logs

        # The stop block: the server, the workers and the database end; the shell exits 0.
        group = [*psutil.Process(shell.pid).children(recursive=True)]
        with go_on.open("w") as say:
            say.write("stop\n")
        assert shell.wait(timeout=120) == 0, log.read_text(errors="replace")[-4000:]
        assert not [p for p in group if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert "database is locked" not in log.read_text(errors="replace")
        for closed in (port, pg_port):
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", closed), timeout=2)
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):  # whatever the block left (its jobs have groups of their own)
            for process in [*psutil.Process(shell.pid).children(recursive=True), psutil.Process(shell.pid)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.kill()
        subprocess.run(["bash", "deployments/postgres.sh", "drop", str(pg_port)], cwd=ROOT, check=False)
