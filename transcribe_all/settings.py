"""A worker's environment: the one place that reads environment variables.

Every variable has the prefix TRANSCRIBE_ALL_, e.g. TRANSCRIBE_ALL_MODEL_CACHE.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "transcribe-all"


class WorkerSettings(BaseSettings):
    """Settings of the machine a worker runs on (not of a run: those are flow parameters)."""

    model_config = SettingsConfigDict(env_prefix="TRANSCRIBE_ALL_", extra="ignore")

    cache_dir: Path = Field(default_factory=_default_cache, description="Converted models and the CLI's Prefect state.")
    cpu_threads: int = Field(default=0, ge=0, description="Threads per engine on CPU; 0 = all cores.")
    decode_workers: int = Field(default=0, ge=0, description="Parallel audio decoders; 0 = from the cores.")

    @property
    def model_cache(self) -> Path:
        return self.cache_dir / "models"

    @property
    def prefect_home(self) -> Path:
        return self.cache_dir / "prefect"


@lru_cache(maxsize=1)
def worker_settings() -> WorkerSettings:
    return WorkerSettings()
