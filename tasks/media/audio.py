"""Probe and decode media with PyAV.

Why PyAV: its wheels bundle FFmpeg, so mp3, m4a/aac, opus, flac and the audio of
mp4/mkv video decode with no system ffmpeg, and durations come from container
headers without decoding a sample. Every engine gets the same 16 kHz mono float32.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

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
    with open_regular(path) as handle:
        head = handle.read(WAV_HEADER_BYTES)
        size = os.fstat(handle.fileno()).st_size
    duration = wav_duration(head, size)
    return probe_container(path) if duration is None else duration


def probe_container(path: str | Path) -> float:
    """The chosen audio stream's duration from the headers PyAV (FFmpeg) reads, or from a decode.

    The stream's own duration wins over the container's: in a video the picture may outlast
    the sound, and the container's length is then the picture's.
    """
    try:
        with open_regular(path), av.open(str(path), metadata_errors="ignore") as container:
            stream, _ = select_audio_stream(container)
            duration = _stream_duration(stream)
            if duration is None and container.duration is not None:
                duration = container.duration / av.time_base
    except av.FFmpegError as error:
        raise MediaError(f"not a readable media file: {_ffmpeg_reason(error)}") from error
    if duration is None:
        # Some raw streams (ADTS, headerless) carry no duration: count it instead.
        duration = sum(len(chunk) for chunk in AudioDecoder(path).chunks()) / SAMPLE_RATE
    if duration <= 0:
        raise MediaError("no audio samples: the file holds a header but zero seconds of audio")
    return duration


def decode_audio(path: str | Path, expected_s: float | None = None) -> npt.NDArray[np.float32]:
    """Decode the chosen audio stream (`select_audio_stream`) to 16 kHz mono float32, all at once.

    For short files; `tasks/media/pieces.py` streams long ones to disk instead. Truncation is
    judged per stream (`AudioDecoder`); `expected_s` is the scan's probed duration of that stream.
    """
    decoder = AudioDecoder(path, expected_s)
    chunks = list(decoder.chunks())
    return np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)


@dataclass(frozen=True, slots=True)
class StreamChoice:
    """Which audio stream of a file is transcribed."""

    index: int  # the stream's index in the container (ffprobe's `index`, ffmpeg's `-map 0:N`)
    note: str | None = None  # set when the file holds several audio streams


def select_audio_stream(container: av.container.InputContainer) -> tuple[av.audio.stream.AudioStream, StreamChoice]:
    """The audio stream marked default, else the first; with a note naming the others."""
    audio = list(container.streams.audio)
    if not audio:
        raise MediaError("no audio stream in the file")
    default = [s for s in audio if s.disposition & av.stream.Disposition.default]
    chosen = default[0] if default else audio[0]
    if len(audio) == 1:
        return chosen, StreamChoice(chosen.index)
    indexes = ", ".join(f"#{s.index}" for s in audio)
    why = "marked default" if default else "first; none marked default"
    note = f"{len(audio)} audio streams ({indexes}): transcribed #{chosen.index} ({why})"
    return chosen, StreamChoice(chosen.index, note)


class AudioDecoder:
    """Decode one file's chosen audio stream to 16 kHz mono float32, chunk by chunk.

    Memory does not grow with the file: `chunks()` yields what each packet decodes to.
    After the last chunk the decode is checked for truncation against the stream's own
    duration (its header, or Matroska's per-stream DURATION tag) or the scan's probe of it
    (`expected_s`); a stream without one is checked by where the file's packets (all
    streams) end against the container's length, so a video whose picture outlasts its
    sound is not called truncated.
    """

    def __init__(self, path: str | Path, expected_s: float | None = None) -> None:
        self.path, self.expected_s = path, expected_s
        self.choice: StreamChoice | None = None  # set once the file is open
        self.samples = 0

    def chunks(self) -> Iterator[npt.NDArray[np.float32]]:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        try:
            with open_regular(self.path), av.open(str(self.path), metadata_errors="ignore") as container:
                stream, self.choice = select_audio_stream(container)
                data_end = 0.0
                for packet in container.demux():
                    data_end = max(data_end, _packet_end(packet))
                    if packet.stream.index != stream.index:
                        continue
                    for frame in packet.decode():
                        yield from self._count(resampler.resample(frame))  # type: ignore[arg-type]
                yield from self._count(resampler.resample(None))
                self._check(_stream_duration(stream), container.duration, data_end)
        except av.FFmpegError as error:
            raise MediaError(f"decode failed: {_ffmpeg_reason(error)}") from error

    def _count(self, frames: list[av.AudioFrame]) -> Iterator[npt.NDArray[np.float32]]:
        for out in frames:
            samples = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
            self.samples += len(samples)
            yield samples

    def _check(self, own_s: float | None, container_duration: int | None, data_end_s: float) -> None:
        decoded_s = self.samples / SAMPLE_RATE
        if decoded_s == 0:
            raise MediaError("no audio samples: decoding produced zero seconds of audio")
        if own_s is not None:
            # A WAV's own duration is the data present; the scan's figure (`expected_s`) is the header's claim.
            claim_s = max(own_s, self.expected_s or 0.0)
            if decoded_s < TRUNCATION_TOLERANCE * claim_s - 0.5:
                raise MediaError(f"truncated: the header says {claim_s:.1f} s but only {decoded_s:.1f} s decode")
        elif container_duration is not None:
            header_s, held_s = container_duration / av.time_base, max(decoded_s, data_end_s)
            if held_s < TRUNCATION_TOLERANCE * header_s - 0.5:
                raise MediaError(f"truncated: the header says {header_s:.1f} s but the file's data ends at "
                                 f"{held_s:.1f} s")
        elif self.expected_s and decoded_s < TRUNCATION_TOLERANCE * self.expected_s - 0.5:
            raise MediaError(f"truncated: expected {self.expected_s:.1f} s but only {decoded_s:.1f} s decode")


def open_regular(path: str | Path) -> BinaryIO:
    """Open a regular file for reading, and nothing else.

    The scan refuses FIFOs, sockets and devices from their `stat` before opening; this is the
    second guard, for a file swapped since: O_NONBLOCK keeps the open of a FIFO from waiting
    for a writer, and the opened descriptor is checked before a byte is read. PyAV then opens
    the path itself, while this handle is held: its own I/O is faster than Python file
    objects, and the file name's extension helps FFmpeg name what is wrong with a bad file.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise MediaError(f"not a regular file ({file_kind(mode)}): not read")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words, for its `failed` row."""
    kinds = [(stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder")]
    return next((name for test, name in kinds if test(mode)), "not a plain file")


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


def _stream_duration(stream: av.audio.stream.AudioStream) -> float | None:
    """The stream's own length: its header's, else Matroska's per-stream DURATION tag; None if neither."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag:
        try:
            hours, minutes, seconds = tag.split(":")
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        except ValueError:
            return None
    return None


def _packet_end(packet: av.Packet[Any]) -> float:
    if packet.pts is None or packet.time_base is None:
        return 0.0
    return float((packet.pts + (packet.duration or 0)) * packet.time_base)


def _ffmpeg_reason(error: av.FFmpegError) -> str:
    return error.strerror or str(error)
