"""Probe and decode media with PyAV.

Why PyAV: its wheels bundle FFmpeg, so mp3, m4a/aac, opus, flac and the audio of
mp4/mkv video decode with no system ffmpeg, and durations come from container
headers without decoding a sample. Every engine gets the same 16 kHz mono float32.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from tasks.records import SAMPLE_RATE

# Below this fraction of the header's duration a decode is called truncated.
TRUNCATION_TOLERANCE = 0.9


class MediaError(ValueError):
    """A file that cannot be transcribed; the message is the manifest's `error`."""


def probe_duration(path: str | Path) -> float:
    """Duration in seconds from the container header (no full decode)."""
    _check_wav_complete(Path(path))
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            stream = _audio_stream(container)
            duration = _header_duration(container, stream)
    except av.FFmpegError as error:
        raise MediaError(f"not a readable media file: {_ffmpeg_reason(error)}") from error
    if duration is None:
        # Some raw streams (ADTS, headerless) carry no duration: count it instead.
        duration = len(decode_audio(path, expected_s=None)) / SAMPLE_RATE
    if duration <= 0:
        raise MediaError("no audio samples: the file holds a header but zero seconds of audio")
    return duration


def decode_audio(path: str | Path, expected_s: float | None) -> npt.NDArray[np.float32]:
    """Decode the first audio stream to 16 kHz mono float32.

    `expected_s` is the probed duration: a decode that stops well short of it means
    the file is truncated or corrupt, which is an error rather than a short transcript.
    """
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    chunks: list[npt.NDArray[np.float32]] = []
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            stream = _audio_stream(container)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except av.FFmpegError as error:
        raise MediaError(f"decode failed: {_ffmpeg_reason(error)}") from error
    samples = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    decoded_s = len(samples) / SAMPLE_RATE
    if decoded_s == 0:
        raise MediaError("no audio samples: decoding produced zero seconds of audio")
    if expected_s and decoded_s < TRUNCATION_TOLERANCE * expected_s - 0.5:
        raise MediaError(
            f"truncated: the header says {expected_s:.1f} s but only {decoded_s:.1f} s decode"
        )
    return samples


def _check_wav_complete(path: Path) -> None:
    """FFmpeg sizes a WAV by the bytes present, so a cut-off WAV looks like a short one.

    The RIFF `data` chunk declares its length: compare it with what the file holds.
    """
    with path.open("rb") as handle:
        head = handle.read(1 << 16)
        size = handle.seek(0, 2)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return
    position, byte_rate = 12, 0
    while position + 8 <= len(head):
        chunk, length = head[position : position + 4], int.from_bytes(head[position + 4 : position + 8], "little")
        if chunk == b"fmt ":
            byte_rate = int.from_bytes(head[position + 16 : position + 20], "little")
        if chunk == b"data":
            present = size - position - 8
            if byte_rate and length not in (0, 0xFFFFFFFF) and present < length:
                raise MediaError(
                    f"truncated: the header says {length / byte_rate:.1f} s but the file holds"
                    f" {present / byte_rate:.1f} s"
                )
            return
        position += 8 + length + (length & 1)


def _audio_stream(container: av.container.InputContainer) -> av.audio.stream.AudioStream:
    if not container.streams.audio:
        raise MediaError("no audio stream in the file")
    return container.streams.audio[0]


def _header_duration(
    container: av.container.InputContainer, stream: av.audio.stream.AudioStream
) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _ffmpeg_reason(error: av.FFmpegError) -> str:
    return error.strerror or str(error)
