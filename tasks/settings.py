"""A worker's environment: the one place that reads environment variables.

Every variable has the prefix TRANSCRIBE_ALL_, e.g. TRANSCRIBE_ALL_MODEL_CACHE.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def cpu_cores(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """The cores this worker may use: its CPU affinity (a container's cpuset), bounded by a cgroup CPU quota
    (`docker run --cpus`, a pod's CPU limit: the host's cores are all visible there), at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    quota = _cpu_quota(cgroup)
    return max(1, min(cores, math.ceil(quota))) if quota else cores


def _cpu_quota(cgroup: Path) -> float | None:
    """CPUs' worth of time the cgroup may use (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us`), None: no limit."""
    try:
        if (v2 := cgroup / "cpu.max").is_file():  # "max 100000" or "200000 100000"
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        quota_us = int((cgroup / "cpu" / "cpu.cfs_quota_us").read_text())
        return None if quota_us <= 0 else quota_us / int((cgroup / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None


def _default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "transcribe-all"


class WorkerSettings(BaseSettings):
    """Settings of the machine a worker runs on (not of a run: those are flow parameters)."""

    model_config = SettingsConfigDict(env_prefix="TRANSCRIBE_ALL_", extra="ignore")

    cache_dir: Path = Field(default_factory=_default_cache, description="Converted models and the CLI's Prefect state.")
    cpu_threads: int = Field(default=0, ge=0, description=(
        "Threads per engine on CPU; 0 = the engine's default (CTranslate2: the worker's cores up to 4, in two "
        "lanes; torch: every core)."))
    decode_workers: int = Field(
        default=0, ge=0, description="Decoder processes per worker; 0 = all cores but one (1 to 8)."
    )
    aws_credentials_block: str | None = Field(
        default=None,
        description="Name of a saved prefect-aws AwsCredentials block for s3:// sources and outputs;"
        " unset = boto3's default chain (AWS_* variables, profile, instance role).",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (MinIO, moto); unset = AWS, or the block's own."
    )

    @property
    def model_cache(self) -> Path:
        return self.cache_dir / "models"

    @property
    def prefect_home(self) -> Path:
        return self.cache_dir / "prefect"

    @property
    def staging_dir(self) -> Path:
        """Where outputs bound for S3 are written before they are uploaded."""
        return self.cache_dir / "staging"


@lru_cache(maxsize=1)
def worker_settings() -> WorkerSettings:
    return WorkerSettings()


def external_prefect_api() -> str | None:
    """The Prefect API the user configured, if any (else the CLI starts a temporary one)."""
    return os.environ.get("PREFECT_API_URL") or None


def prefect_worker_name() -> str | None:
    """The name of the Prefect worker that started this flow-run process, if one did.

    A worker (process, Docker, Kubernetes…) passes its name to every flow run it starts; a flow run
    is a process of its own, so this, not the process id, says which worker held the machine.
    """
    return os.environ.get("PREFECT__WORKER_NAME") or None


def prepare_cli_prefect_env(settings: WorkerSettings, verbose: bool) -> None:
    """Keep the CLI's temporary Prefect state in our cache, not in ~/.prefect, and quiet.

    Must run before `prefect` is imported: Prefect reads these once at import.
    """
    if not external_prefect_api():
        settings.prefect_home.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("PREFECT_HOME", str(settings.prefect_home))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        # a failed run is reported by the CLI in one line; -v shows Prefect's traceback too
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
        os.environ.setdefault("PREFECT_LOGGING_SERVER_LEVEL", "WARNING")
