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

WAV_HEADER_BYTES = 1 << 16  # where the RIFF `fmt ` and `data` chunk headers are looked for
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
MEDIASUBTYPE_GUID_TAIL = bytes.fromhex("00001000800000aa00389b71")  # KSDATAFORMAT_SUBTYPE_*
# (format tag, bits per sample) that FFmpeg reads as fixed-size PCM: 1 = integer PCM, 3 = IEEE float.
PLAIN_WAV_FORMATS = frozenset([(1, 8), (1, 16), (1, 24), (1, 32), (3, 32), (3, 64)])

# Below this fraction of the header's duration a decode is called truncated.
TRUNCATION_TOLERANCE = 0.9


class MediaError(ValueError):
    """A file that cannot be transcribed; the message is the manifest's `error`."""


def probe_duration(path: str | Path) -> float:
    """Duration in seconds from the container header (no full decode)."""
    path = Path(path)
    with path.open("rb") as handle:
        head = handle.read(WAV_HEADER_BYTES)
        size = handle.seek(0, 2)
    duration = wav_duration(head, size)
    return probe_container(path) if duration is None else duration


def probe_container(path: str | Path) -> float:
    """Duration from the header PyAV (FFmpeg) reads, or from a decode if the header has none."""
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


def wav_duration(head: bytes, size: int) -> float | None:
    """A plain PCM or float WAV's duration from its RIFF header; None: let FFmpeg probe it.

    `head` is the file's first bytes (`WAV_HEADER_BYTES`), `size` its length. FFmpeg sizes a
    WAV by the bytes present, so a cut-off WAV looks like a short one: the `data` chunk
    declares its length, and a file holding less is refused as truncated here. For the
    formats FFmpeg counts as `data bytes × 8 / (channels × bits)` samples, the header alone
    gives the same duration an FFmpeg probe would, without the probe's cost.
    """
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    position, fmt = 12, b""
    while position + 8 <= len(head):
        chunk, length = head[position : position + 4], int.from_bytes(head[position + 4 : position + 8], "little")
        if chunk == b"fmt ":
            fmt = head[position + 8 : position + 8 + min(length, 40)]
        if chunk == b"data":
            return _pcm_duration(fmt, length, present=size - position - 8)
        position += 8 + length + (length & 1)
    return None


def _pcm_duration(fmt: bytes, length: int, present: int) -> float | None:
    byte_rate = int.from_bytes(fmt[8:12], "little") if len(fmt) >= 16 else 0
    if byte_rate and length not in (0, 0xFFFFFFFF) and present < length:
        raise MediaError(
            f"truncated: the header says {length / byte_rate:.1f} s but the file holds {present / byte_rate:.1f} s"
        )
    if len(fmt) < 16 or length in (0, 0xFFFFFFFF):
        return None  # no format, or a streamed WAV of unknown length: FFmpeg decides
    tag, channels = int.from_bytes(fmt[0:2], "little"), int.from_bytes(fmt[2:4], "little")
    rate, bits = int.from_bytes(fmt[4:8], "little"), int.from_bytes(fmt[14:16], "little")
    if tag == WAVE_FORMAT_EXTENSIBLE and fmt[28:40] == MEDIASUBTYPE_GUID_TAIL:
        tag = int.from_bytes(fmt[24:26], "little")  # the sub-format GUID starts with the format tag
    if (tag, bits) not in PLAIN_WAV_FORMATS or not channels or not rate:
        return None
    samples = length * 8 // (channels * bits)
    return samples / rate if samples else None


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
