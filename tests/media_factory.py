"""Build test media: odd-but-valid files from real speech, and every kind of bad file."""

from __future__ import annotations

import os
import shutil
import wave
from pathlib import Path

import av
import numpy as np

from tasks.media.audio import decode_audio, probe_duration

SPEECH = Path(__file__).resolve().parent.parent / "examples" / "library" / "meetings" / "standup.wav"


def speech(rate: int = 16_000) -> np.ndarray:
    samples = decode_audio(SPEECH, probe_duration(SPEECH))
    if rate == 16_000:
        return samples
    positions = np.linspace(0, len(samples) - 1, int(len(samples) * rate / 16_000))
    return np.interp(positions, np.arange(len(samples)), samples).astype(np.float32)


def write_audio(path: Path, samples: np.ndarray, rate: int, channels: int = 1, codec: str = "pcm_s16le",
                layout: str | None = None) -> Path:
    """Write mono `samples` duplicated to `channels` channels (or to every channel of `layout`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    layout = layout or {1: "mono", 2: "stereo", 8: "7.1"}[channels]
    channels = av.AudioLayout(layout).nb_channels
    data = np.tile((samples * 32767).astype(np.int16), (channels, 1))
    container_format = "wav" if codec.startswith("pcm") else None
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(data.T.reshape(1, -1).copy(), format="s16", layout=layout)
        frame.sample_rate = rate
        resampler = av.AudioResampler(format=stream.format.name, layout=layout, rate=rate)
        for chunk in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(chunk):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def build_odd_valid(root: Path) -> dict[str, str]:
    """Unusual but valid media; returns source → why it is odd."""
    write_audio(root / "eight_channels.wav", speech(48_000), 48_000, channels=8)
    write_audio(root / "narrowband_8k.wav", speech(8_000), 8_000)
    write_audio(root / "stereo_48k.flac", speech(48_000), 48_000, channels=2, codec="flac")
    # each file's bytes differ, or the run would rightly transcribe the content only once
    write_audio(root / "héllo wörld ☃ with spaces.wav", speech() * 0.9, 16_000)
    write_audio(root / "a" / "b" / "c" / "d" / "e" / "f" / "deep.wav", speech(24_000), 24_000)
    shutil.copy(SPEECH, root / "no_extension_but_wav")
    return {
        "eight_channels.wav": "8 channels", "narrowband_8k.wav": "8 kHz", "stereo_48k.flac": "48 kHz stereo",
        "héllo wörld ☃ with spaces.wav": "unicode name", "a/b/c/d/e/f/deep.wav": "deep folder",
        "no_extension_but_wav": "sniffed",
    }


def build_bad(root: Path) -> dict[str, str]:
    """Files that must each become one `failed` row; returns source → expected error fragment."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "zero_bytes.wav").write_bytes(b"")
    whole = SPEECH.read_bytes()
    (root / "truncated.wav").write_bytes(whole[: len(whole) // 3])
    (root / "not_audio.mp3").write_text("this is a text file pretending to be an mp3\n" * 50)
    (root / "random_bytes.flac").write_bytes(np.random.default_rng(7).bytes(20_000))
    os.symlink(root / "does-not-exist.wav", root / "dangling_link.wav")
    with wave.open(str(root / "header_only.wav"), "wb") as header_only:
        header_only.setnchannels(1)
        header_only.setsampwidth(2)
        header_only.setframerate(16_000)
        header_only.writeframes(b"")
    return {
        "zero_bytes.wav": "empty file", "truncated.wav": "truncated",
        "not_audio.mp3": "not a readable media file", "random_bytes.flac": "no audio samples",
        "dangling_link.wav": "cannot read", "header_only.wav": "no audio samples",
    }


def build_symlink_loop(root: Path) -> None:
    (root / "loop").mkdir(parents=True, exist_ok=True)
    os.symlink("..", root / "loop" / "back_to_parent")


HARVARD = Path(__file__).resolve().parent.parent / "examples" / "harvard_sentences.txt"
VOICES = ("en-us", "en-gb", "en-us+m3", "en-gb-scotland")


def spoken_library(root: Path, count: int = 40) -> dict[str, str]:
    """Harvard sentences spoken by espeak-ng in four voices; returns source → reference text."""
    import subprocess

    sentences = [line.strip() for line in HARVARD.read_text().splitlines() if line.strip()][:count]
    root.mkdir(parents=True, exist_ok=True)
    references = {}
    for n, sentence in enumerate(sentences):
        source = f"harvard_{n:02d}.wav"
        subprocess.run(["espeak-ng", "-v", VOICES[n % 4], "-s", str(140 + 10 * (n % 3)), "-w", str(root / source),
                        sentence], check=True, capture_output=True)
        references[source] = sentence
    return references


OTHER_SPEECH = SPEECH.parent / "planning.flac"


def build_guard_clips(root: Path) -> dict[str, str]:
    """Clips that trip the quality guards; returns source → what it is."""
    first = speech()
    second = decode_audio(OTHER_SPEECH, probe_duration(OTHER_SPEECH))
    noise = np.random.default_rng(3).normal(0.0, 0.1, 16_000 * 10).clip(-1, 1).astype(np.float32)
    write_audio(root / "looped.wav", np.tile(first, 4), 16_000)  # one phrase said 4 times
    write_audio(root / "silence.wav", np.zeros(16_000 * 10, np.float32), 16_000)
    write_audio(root / "noise.wav", noise, 16_000)
    write_audio(root / "silent_middle.wav", np.concatenate([first, np.zeros(16_000 * 40, np.float32), second]), 16_000)
    return {"looped.wav": "a phrase said 4 times", "silence.wav": "pure silence", "noise.wav": "white noise",
            "silent_middle.wav": "speech, 40 s of silence, speech"}
