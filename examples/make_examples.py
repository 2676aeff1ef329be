"""Regenerate `examples/library`: short spoken clips in several formats.

espeak-ng speaks each sentence to WAV; PyAV (which bundles FFmpeg's encoders)
re-encodes it. The clips and `references.tsv` are committed, so this only needs
to run when the set changes:  python examples/make_examples.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import av
import numpy as np

HERE = Path(__file__).resolve().parent
LIBRARY = HERE / "library"

# (relative path, encoder, sample rate, layout, voice, sentence)
CLIPS = [
    ("meetings/standup.wav", "pcm_s16le", 16000, "mono", "en-us",
     "The quick brown fox jumps over the lazy dog."),
    ("meetings/planning.flac", "flac", 22050, "mono", "en-gb",
     "Please call Stella and ask her to bring these things with her from the store."),
    ("lectures/history.mp3", "libmp3lame", 44100, "stereo", "en-us",
     "The library opens at nine in the morning and closes at five in the evening."),
    ("lectures/science.m4a", "aac", 48000, "stereo", "en-gb",
     "Water boils at one hundred degrees at sea level."),
    ("podcasts/episode one.opus", "libopus", 48000, "mono", "en-us",
     "Thank you for listening to our podcast about gardening and good food."),
    ("podcasts/interview.mp4", "aac", 44100, "mono", "en-us",
     "She sells sea shells by the sea shore every summer."),
]


def speak(text: str, voice: str, wav: Path) -> None:
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(wav), text], check=True)


def read_wav(wav: Path) -> tuple[np.ndarray, int]:
    with av.open(str(wav)) as container:
        stream = container.streams.audio[0]
        frames = [f.to_ndarray() for f in container.decode(stream)]
        return np.concatenate(frames, axis=1), stream.rate


def encode(samples: np.ndarray, rate: int, out: Path, codec: str, out_rate: int, layout: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    container_format = {".opus": "ogg", ".m4a": "ipod", ".mp4": "mp4"}.get(out.suffix)
    with av.open(str(out), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=out_rate, layout=layout)
        resampler = av.AudioResampler(format=stream.format.name, layout=layout, rate=out_rate)
        frame = av.AudioFrame.from_ndarray(samples.astype(np.int16), format="s16", layout="mono")
        frame.sample_rate = rate
        for chunk in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(chunk):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def main() -> int:
    rows = ["source\ttext"]
    with tempfile.TemporaryDirectory() as tmp:
        for rel, codec, rate, layout, voice, text in CLIPS:
            wav = Path(tmp) / "speech.wav"
            speak(text, voice, wav)
            samples, source_rate = read_wav(wav)
            encode(samples, source_rate, LIBRARY / rel, codec, rate, layout)
            rows.append(f"{rel}\t{text}")
    (HERE / "references.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    print(f"wrote {len(CLIPS)} clips under {LIBRARY}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
