"""The bundled tiny.en, converted for transformers once per test process (about 8 s)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def converted_tiny() -> Path:
    from tasks.convert_ct2 import convert_ct2_whisper
    from tasks.models import bundled_whisper_ct2

    root = Path(tempfile.mkdtemp(prefix="hf-tiny-"))
    atexit.register(shutil.rmtree, root, True)
    return convert_ct2_whisper(bundled_whisper_ct2(), root / "whisper-tiny.en-hf")
