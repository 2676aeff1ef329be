"""The worker as it is deployed: the `cpu` image (deployments/images/build.sh cpu), run with podman.

A Prefect server on loopback and a control worker on the host; the only worker on the CPU pool runs
inside the image (host network, the library and DIR bind-mounted at the same paths as on the host).
`prefect deployment run` fans the shards out to it, the real embedded model transcribes them there,
and every file ends up in the manifest once. Also the README's one-machine command inside the image.
Run by deployments/images/e2e.sh, which builds the image from this checkout first and says so
(TRANSCRIBE_ALL_IMAGE_E2E=1): an image left in the store by an earlier build holds older code, so the
tests are skipped without that word, as in CI, whose cold image build would cost more than its budget.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from tests.prefect_loopback import ROOT, LoopbackPrefect

IMAGE = "localhost/transcribe-all-worker:cpu"
PODMAN_ENV = {**os.environ, "CONTAINERS_CONF": str(ROOT / "deployments" / "images" / "containers.conf")}


def _image_present() -> bool:
    if os.environ.get("TRANSCRIBE_ALL_IMAGE_E2E") != "1" or shutil.which("podman") is None:
        return False
    return subprocess.run(["podman", "image", "exists", IMAGE], env=PODMAN_ENV, check=False).returncode == 0


pytestmark = [
    pytest.mark.e2e, pytest.mark.slow,
    pytest.mark.skipif(not _image_present(),
                       reason=f"needs {IMAGE} built from this checkout: deployments/images/e2e.sh"),
]


def podman_run(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", "run", "--rm", "--network", "host", *args], env=PODMAN_ENV,
                          capture_output=True, text=True, timeout=timeout, check=False)


def manifest_rows(out: Path) -> list[dict[str, object]]:
    return ds.dataset(out / "manifest", partitioning="hive").to_table().to_pylist()  # type: ignore[no-any-return]


def expected_sources(library: Path) -> list[str]:
    return sorted(p.relative_to(library).as_posix() for p in library.rglob("*.*"))


def test_the_cli_in_the_image_transcribes_a_library(tmp_path: Path, example_library: Path) -> None:
    """The README's `podman run ... -v LIB:/media:ro -v OUT:/out IMAGE transcribe-all run /media --out /out`."""
    out = tmp_path / "out"
    out.mkdir()
    done = podman_run("-v", f"{example_library}:/media:ro", "-v", f"{out}:/out", IMAGE,
                      "transcribe-all", "run", "/media", "--out", "/out", timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = manifest_rows(out)
    assert sorted(str(r["source"]) for r in rows) == expected_sources(example_library)
    assert {r["status"] for r in rows} == {"ok"}
    assert all(str(r["text"]).strip() for r in rows), "every file has a transcript"


@pytest.fixture(scope="module")
def loopback_with_container_worker(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LoopbackPrefect, Path, str]]:
    """A server and control worker on the host; the CPU pool's only worker in the image, DIR shared."""
    prefect = LoopbackPrefect()
    prefect.start()
    shared = tmp_path_factory.mktemp("container-dir")  # DIR: the same path inside the container
    name = f"transcribe-worker-{uuid.uuid4().hex[:8]}"
    try:
        # Deployed with PROJECT_DIR unset, the pull step keeps `{{ $PROJECT_DIR }}` and each worker fills in
        # its own: the checkout on the host, /app in the image (set at deploy time, it would be the host's).
        del prefect.env["PROJECT_DIR"]
        prefect.deploy_all()
        prefect.start_worker("control", "transcribe-control", limit=4, extra_env={"PROJECT_DIR": str(ROOT)})
        env = {key: prefect.env[key] for key in ("PREFECT_API_URL", "PREFECT_WORKER_QUERY_SECONDS",
                                                 "PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_LOGGING_LEVEL")}
        started = subprocess.run(
            ["podman", "run", "--detach", "--rm", "--network", "host", "--name", name, "--hostname", name,
             *[f"--env={key}={value}" for key, value in env.items()],
             "-v", f"{ROOT / 'examples'}:{ROOT / 'examples'}:ro", "-v", f"{shared}:{shared}", IMAGE,
             "prefect", "worker", "start", "--pool", "transcribe-cpu", "--name", name, "--limit", "1",
             "--install-policy", "never"],
            env=PODMAN_ENV, capture_output=True, text=True, timeout=120, check=False)
        assert started.returncode == 0, started.stderr[-2000:]
        yield prefect, shared, name
    finally:
        logs = subprocess.run(["podman", "logs", name], env=PODMAN_ENV, capture_output=True, text=True, check=False)
        (prefect.home / "worker-container.log").write_text(logs.stdout + logs.stderr)
        subprocess.run(["podman", "stop", "--time", "10", name], env=PODMAN_ENV, capture_output=True, check=False)
        prefect.stop()


def test_a_worker_in_the_image_runs_the_shards_of_a_deployment_run(
    loopback_with_container_worker: tuple[LoopbackPrefect, Path, str], example_library: Path
) -> None:
    prefect, shared, name = loopback_with_container_worker
    out = shared / "out"
    params = {"source": str(example_library), "out": str(out), "pool": "cpu", "shards": 2}
    done = prefect.run_deployment("transcribe-library/nightly", params, timeout_s=600)
    assert done.returncode == 0, done.stdout[-3000:] + (prefect.home / "worker-control.log").read_text()[-3000:]
    rows = manifest_rows(out)
    assert sorted(str(r["source"]) for r in rows) == expected_sources(example_library)  # every file once
    assert {r["status"] for r in rows} == {"ok"} and all(str(r["text"]).strip() for r in rows)
    assert prefect.flow_run_states("transcribe-shard") == ["COMPLETED", "COMPLETED"]
    runs = ds.dataset(out / "runs").to_table().to_pylist()
    assert len(runs) == 1 and runs[0]["files_ok"] == 6 and runs[0]["files_failed"] == 0
    assert runs[0]["workers"] == 1  # distinct workers that ran shards: one container ran both
    # the pool's only worker is the one in the container: the shards ran there
    workers = prefect.api("work_pools/transcribe-cpu/workers/filter", {})
    assert [w["name"] for w in workers] == [name]
