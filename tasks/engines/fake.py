"""A deterministic engine for orchestration tests: no model, text from the audio itself.

The transcript names the clip's length and a checksum of its samples, so a test can
tell that each file got its own audio, and a retry produces the same text.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence

from tasks.engines.base import EngineConfig
from tasks.engines.options import FakeOptions, engine_options
from tasks.records import Clip, Segment, Transcript


class FakeTranscriber:
    engine = "fake"

    def __init__(self, config: EngineConfig, model: str = "fake", cpu_threads: int = 0) -> None:
        self.model = config.model or model
        # seconds of wall time per second of audio: lets benchmarks model a real engine's cost
        self.seconds_per_audio_second = engine_options(config, FakeOptions).seconds_per_audio_second

    def settings(self) -> dict[str, str]:
        return {"seconds_per_audio_second": str(self.seconds_per_audio_second)}

    def transcribe(self, clips: Sequence[Clip]) -> list[Transcript]:
        results = []
        for clip in clips:
            time.sleep(clip.duration_s * self.seconds_per_audio_second)
            digest = hashlib.sha256(clip.samples.tobytes()).hexdigest()[:8]
            text = f"clip of {clip.duration_s:.2f} seconds {digest}"
            results.append(Transcript(text, (Segment(0.0, round(clip.duration_s, 3), text),), language="en"))
        return results
