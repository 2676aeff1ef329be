"""A hostile library: everything a real archive holds that once hung, escaped or broke a run.

`build_hostile(root, outside)` returns source → what the scan must make of it: `ok`, or the
fragment of the `failed` row's error. `LOCKED` is the folder that cannot be listed: as
root, `chmod 000` does not stop reads, so tests also make `os.scandir` refuse it
(`refuse_locked`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import av
import numpy as np
import pytest

from tasks.media.sources import LINK_OUTSIDE
from tests.media_factory import speech, write_audio

LOCKED = "locked"
NON_UTF8 = os.fsdecode(b"caf\xe9 \xff.wav")  # Latin-1 é and a lone 0xFF: not UTF-8
NON_UTF8_SOURCE = "caf%E9 %FF.wav"


def build_hostile(root: Path, outside: Path) -> dict[str, str]:
    """Build the library under `root` (and its link targets under `outside`)."""
    root.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    voice = speech()
    write_audio(root / "plain.wav", voice, 16_000)
    write_audio(root / NON_UTF8, voice * 0.8, 16_000)
    write_audio(root / "100% done.wav", voice * 0.7, 16_000)
    os.mkfifo(root / "x.wav")
    os.symlink("/dev/zero", root / "zero.wav")
    write_audio(outside / "secret.wav", voice * 0.6, 16_000)
    (outside / "tree").mkdir(exist_ok=True)
    write_audio(outside / "tree" / "deep.wav", voice * 0.5, 16_000)
    os.symlink(outside / "secret.wav", root / "out_link.wav")
    os.symlink(outside / "tree", root / "out_folder")
    (root / "loop").mkdir()
    os.symlink("..", root / "loop" / "back_to_root")
    os.symlink("plain.wav", root / "inside_link.wav")
    (root / LOCKED).mkdir()
    write_audio(root / LOCKED / "hidden.wav", voice * 0.4, 16_000)
    os.chmod(root / LOCKED, 0)
    video_with_audio(root / "video_longer.mkv", "matroska", "mpeg4", [("aac", voice * 0.95)], video_s=8.0)
    video_with_audio(root / "video_longer.webm", "webm", "libvpx", [("libopus", voice * 0.9)], video_s=8.0)
    short_first = np.concatenate([voice, np.zeros(16_000 * 3, np.float32)])  # the second stream is longer
    video_with_audio(root / "two_streams.mkv", "matroska", "mpeg4", [("aac", voice[: len(voice) // 2]),
                                                                      ("aac", short_first * 0.85)], video_s=7.0)
    video_with_audio(root / "default_second.mkv", "matroska", "mpeg4",
                     [("aac", np.zeros(16_000, np.float32)), ("aac", voice * 0.75)], video_s=4.0, default=1)
    return {
        "plain.wav": "ok", NON_UTF8_SOURCE: "ok", "100%25 done.wav": "ok", "inside_link.wav": "ok",
        "x.wav": "not a regular file (a FIFO)", "zero.wav": "not a regular file (a character device)",
        "out_link.wav": LINK_OUTSIDE, "out_folder/": LINK_OUTSIDE, f"{LOCKED}/": "cannot list folder",
        "video_longer.mkv": "ok", "video_longer.webm": "ok", "two_streams.mkv": "ok", "default_second.mkv": "ok",
    }


def video_with_audio(path: Path, container_format: str, video_codec: str,
                     audio: Sequence[tuple[str, np.ndarray]], video_s: float, default: int | None = None) -> Path:
    """A small video of `video_s` seconds with one audio stream per (codec, 16 kHz samples)."""
    rate = 48_000
    with av.open(str(path), "w", format=container_format) as container:
        video = container.add_stream(video_codec, rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        streams = []
        for n, (codec, _) in enumerate(audio):
            stream = container.add_stream(codec, rate=rate, layout="mono")
            if default is not None:
                stream.disposition = av.stream.Disposition.default if n == default else av.stream.Disposition(0)
            streams.append(stream)
        for index in range(int(video_s * 10)):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), index % 255, np.uint8), format="rgb24")
            frame.pts = index
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        for stream, (_, samples) in zip(streams, audio, strict=True):
            _encode_audio(container, stream, samples, rate)
    return path


def _encode_audio(container: av.container.OutputContainer, stream: av.audio.stream.AudioStream,
                  samples: np.ndarray, rate: int) -> None:
    upsampled = np.interp(np.arange(len(samples) * 3) / 3, np.arange(len(samples)), samples).astype(np.float32)
    resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=rate)
    frame = av.AudioFrame.from_ndarray(upsampled[None, :], format="flt", layout="mono")
    frame.sample_rate = rate
    for chunk in resampler.resample(frame) + resampler.resample(None):
        for packet in stream.encode(chunk):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


@contextmanager
def refuse_locked(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`os.scandir` refuses folders named LOCKED, as it would for anyone but root after chmod 000."""
    real: Callable[..., object] = os.scandir

    def scandir(path: object = ".") -> object:
        if isinstance(path, str | os.PathLike) and os.fspath(path).rstrip("/").endswith(f"/{LOCKED}"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    yield


def unlock(root: Path) -> None:
    """Let pytest remove the folder afterwards."""
    os.chmod(root / LOCKED, stat.S_IRWXU)
