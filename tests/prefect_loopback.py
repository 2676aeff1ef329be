"""A real Prefect server (on PostgreSQL, as the README runs it), work pools, deployments and process
workers on loopback.

Used by the end-to-end tests and the fan-out benchmark. Workers run in their own
process groups; a flow run a worker starts runs in a session of its own, so a test
SIGKILLs a worker's whole process tree (what a lost machine looks like), and shutdown
stops every process under each worker, leaving no strays.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LoopbackPrefect:
    def __init__(self, home: Path | None = None, heartbeat_s: int = 30) -> None:
        self.home = home or Path(tempfile.mkdtemp(prefix="loopback-prefect-"))
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.env = {
            **os.environ,
            "PREFECT_HOME": str(self.home),
            "PREFECT_API_URL": self.url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",  # no cron runs during tests
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(heartbeat_s),
            "PREFECT_LOGGING_LEVEL": "INFO",
            # as the README starts the server: `prefect deployment run --watch` shows the run's log lines
            "PREFECT_SERVER_LOGS_STREAM_OUT_ENABLED": "true",
            "PREFECT_SERVER_LOGS_STREAM_PUBLISHING_ENABLED": "true",
            "PROJECT_DIR": str(ROOT),
        }
        self.server: subprocess.Popen[bytes] | None = None
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.database_port: int | None = None

    def start(self) -> LoopbackPrefect:
        self.database_port = free_port()  # many workers report at once: SQLite would lock
        database = self._postgres("start").stdout.strip()
        log = open(self.home / "server.log", "wb")  # noqa: SIM115 - closed with the process
        self.server = subprocess.Popen(
            [BIN / "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env={**self.env, "PREFECT_API_DATABASE_CONNECTION_URL": database}, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"Prefect server did not start: {(self.home / 'server.log').read_text()[-2000:]}")

    def prefect(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([BIN / "prefect", *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def deploy_all(self, zombie_within_s: float | None = None) -> None:
        env = {**self.env, "PREFECT": str(BIN / "prefect")}
        for command in (["bash", "deployments/create-work-pools.sh"],):
            done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        deployed = self.prefect("--no-prompt", "deploy", "--all")
        assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
        if zombie_within_s is not None:
            script = ["python", str(ROOT / "deployments" / "zombie_automation.py"), "--within", str(zombie_within_s)]
            done = subprocess.run([BIN / script[0], *script[1:]], cwd=ROOT, env=self.env, capture_output=True,
                                  text=True, timeout=120, check=False)
            assert done.returncode == 0, done.stderr[-2000:]

    def start_worker(self, name: str, pool: str, limit: int = 1, extra_env: dict[str, str] | None = None) -> None:
        log = open(self.home / f"worker-{name}.log", "wb")  # noqa: SIM115
        self.workers[name] = subprocess.Popen(
            [BIN / "prefect", "worker", "start", "--pool", pool, "--name", name, "--limit", str(limit),
             "--install-policy", "never"],
            cwd=ROOT, env={**self.env, **(extra_env or {})}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def running_flow_run_on(self, worker: str, flow_name: str) -> str | None:
        """The id of a Running run of the flow whose process is this worker's child, else None.

        (A worker can still have the exiting process of an earlier run as a child, so a child
        process alone does not say that the worker holds a run of this test.)
        """
        children = {process.pid for process in _descendants(self.workers[worker].pid)}
        if not children:
            return None
        runs = self.api("flow_runs/filter", {"flows": {"name": {"any_": [flow_name]}},
                                             "flow_runs": {"state": {"type": {"any_": ["RUNNING"]}}}, "limit": 200})
        for run in runs:
            pid = str(run.get("infrastructure_pid") or "").rsplit(":", 1)[-1]  # "pid" or "host:pid"
            if pid.isdigit() and int(pid) in children:
                return str(run["id"])
        return None

    def api(self, path: str, body: dict[str, object] | None = None) -> Any:
        """GET (no body) or POST JSON to the server's REST API; the decoded answer."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}/{path}", data=data, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def flow_run_state(self, run_id: str) -> str:
        """One flow run's state type (COMPLETED, CRASHED…)."""
        return str(self.api(f"flow_runs/{run_id}")["state_type"])

    def kill_worker(self, name: str) -> None:
        """SIGKILL the worker and every process under it: a machine lost mid-shard."""
        worker = self.workers.pop(name)
        tree = _descendants(worker.pid)
        os.killpg(worker.pid, signal.SIGKILL)
        _kill(tree)

    def run_deployment(
        self, name: str, params: dict[str, object], timeout_s: int = 600
    ) -> subprocess.CompletedProcess[str]:
        return self.prefect("deployment", "run", name, "--params", json.dumps(params), "--watch",
                            "--watch-timeout", str(timeout_s), timeout=timeout_s + 60)

    def flow_run_states(self, flow_name: str) -> list[str]:
        """State types (COMPLETED, CRASHED…) of every run of a flow, straight from the REST API."""
        runs = self.api("flow_runs/filter", {"flows": {"name": {"any_": [flow_name]}}, "limit": 200})
        return [run["state_type"] for run in runs]

    def log_messages(self, pages: int = 20) -> list[str]:
        """The flow- and task-run log lines the server received (what the UI shows), oldest first."""
        messages: list[str] = []
        for page in range(pages):  # the API returns at most 200 a request
            entries = self.api("logs/filter", {"limit": 200, "offset": 200 * page, "sort": "TIMESTAMP_ASC"})
            messages += [str(entry["message"]) for entry in entries]
            if len(entries) < 200:
                break
        return messages

    def stop(self) -> None:
        processes = [*self.workers.values(), *([self.server] if self.server else [])]
        trees = [_descendants(process.pid) for process in processes]
        _stop_groups(processes)
        for tree in trees:
            _kill(tree)  # flow runs a worker started live in sessions of their own
        self.workers.clear()
        if self.database_port is not None:
            self._postgres("drop")
            self.database_port = None

    def _postgres(self, action: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["bash", str(ROOT / "deployments" / "postgres.sh"), action, str(self.database_port)],
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"deployments/postgres.sh {action}: {done.stderr[-2000:]}"
        return done


def _descendants(pid: int) -> list[Any]:
    """Every process under `pid`, found now (the process worker starts each flow run in a session of its
    own, so signalling the worker's process group does not reach them)."""
    import psutil

    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return []


def _kill(processes: list[Any]) -> None:
    import psutil

    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


def _stop_groups(processes: list[subprocess.Popen[bytes]]) -> None:
    # a worker in a background job ignores the first SIGTERM: ask twice, then insist (all at once)
    for sig in (signal.SIGTERM, signal.SIGTERM, signal.SIGKILL):
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
        deadline = time.monotonic() + 10
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        processes = [process for process in processes if process.poll() is None]
        if not processes:
            return
