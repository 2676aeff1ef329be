"""Decode throughput per core: how many CPU cores keep one GPU fed, per format.

Each format is one file of `--seconds` of speech (the committed example clips in a row,
upsampled to 48 kHz stereo, as music and video sources usually are), encoded with PyAV's
bundled encoders: WAV (PCM), FLAC, MP3, M4A (AAC), Opus, and MP4 video (MPEG-4 Part 2
video at 320x240, 25 fps, + AAC audio). The figure is what `tasks/media/audio.py:
decode_audio` does in a decode worker (demux, decode, resample to 16 kHz mono float32),
as audio seconds per CPU second of that process, in one process on one core.

Then cores needed per GPU = engine RTFx on the GPU / (audio s per core-s), for the engine
speeds on record, and what a g6.xlarge (4 vCPU = 2 cores, one L4) and an H100 host can
sustain. The L4 and H100 speeds are scaled from the A100 figures (assumptions below,
printed with the table); replace them with measured RTFx when a device run gives one.

    python bench/bench_decode.py --seconds 120 --out bench/results/decode_cpu.md
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RATE = 48_000
# (label, file name, audio codec, container options) — all encoders ship in PyAV's wheel
FORMATS = (
    ("WAV (PCM s16)", "speech.wav", "pcm_s16le"),
    ("FLAC", "speech.flac", "flac"),
    ("MP3 (128k)", "speech.mp3", "libmp3lame"),
    ("M4A / AAC (128k)", "speech.m4a", "aac"),
    ("Opus (64k)", "speech.opus", "libopus"),
    ("MP4 video + AAC", "speech.mp4", "aac"),
)
# Engine speeds on record (RTFx = audio s / wall s, batch inference on one A100; Open ASR leaderboard)
ENGINES = {"Parakeet-TDT 0.6B": 1000.0, "Whisper large-v3-turbo": 148.0, "Whisper large-v3": 69.0}
# Assumptions, not measurements: an L4 runs these models at ~0.3x an A100 (121 vs 312 dense fp16
# TFLOPS, 300 GB/s vs 2 TB/s), an H100 at ~2x. One core of a host = 2 vCPU (hyper-threads).
GPU_SCALE = {"A100": 1.0, "L4 (g6.xlarge)": 0.3, "H100": 2.0}
HOSTS = {"g6.xlarge (4 vCPU = 2 cores, 1 L4)": ("L4 (g6.xlarge)", 2),
         "H100 host (p5.48xlarge: 192 vCPU / 8 GPUs = 12 cores per GPU)": ("H100", 12)}


def speech_48k_stereo(seconds: float) -> npt.NDArray[np.float32]:
    from tasks.media.audio import decode_audio, probe_duration

    clips = [decode_audio(p, probe_duration(p)) for p in sorted((ROOT / "examples" / "library").rglob("*.*"))]
    mono = np.concatenate(clips)
    mono = np.tile(mono, int(np.ceil(seconds * 16_000 / len(mono))))[: int(seconds * 16_000)]
    up = np.interp(np.arange(int(seconds * RATE)) / 3, np.arange(len(mono)), mono).astype(np.float32)
    return np.stack([up, up * 0.9])


def encode(path: Path, codec: str, audio: npt.NDArray[np.float32]) -> None:
    """Write `audio` (2 x n float32) with `codec`; an .mp4 gets a small video track too."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=RATE if codec != "libopus" else 48_000, layout="stereo")
        if codec in ("libmp3lame", "aac"):
            stream.bit_rate = 128_000
        video = _video_stream(container) if path.suffix == ".mp4" else None
        resampler = av.AudioResampler(format=stream.format.name, layout="stereo", rate=stream.rate)
        block = RATE  # one second per frame handed to the encoder
        for second, start in enumerate(range(0, audio.shape[1], block)):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[:, start : start + block]), format="fltp",
                                               layout="stereo")
            frame.sample_rate = RATE
            for chunk in resampler.resample(frame):
                container.mux(stream.encode(chunk))
            if video is not None:
                _video_second(container, video, second)
        container.mux(stream.encode(None))
        if video is not None:
            container.mux(video.encode(None))


def _video_stream(container: av.container.OutputContainer) -> av.video.stream.VideoStream:
    video = container.add_stream("mpeg4", rate=25)
    video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
    video.time_base = Fraction(1, 25)
    return video


def _video_second(container: av.container.OutputContainer, video: av.video.stream.VideoStream, second: int) -> None:
    for n in range(25):
        shade = (second * 25 + n) % 255
        image = np.full((240, 320, 3), shade, np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = second * 25 + n
        container.mux(video.encode(frame))


def measure(path: Path, repeat: int) -> tuple[float, float]:
    """(audio seconds, best CPU seconds of one decode_audio call in this process)."""
    from tasks.media.audio import decode_audio, probe_duration

    seconds = probe_duration(path)
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        samples = decode_audio(path, seconds)
        best = min(best, time.process_time() - started)
    assert abs(len(samples) / 16_000 - seconds) < 1.0, (path, len(samples), seconds)
    return seconds, best


def report(rows: list[tuple[str, float, float, int]], seconds: float) -> str:
    title = (f"# Decode throughput per core — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {platform.machine()}, "
             f"Python {platform.python_version()}, PyAV {av.__version__}")
    how = (f"`python bench/bench_decode.py --seconds {seconds:g}` — one {seconds:g} s file per format (48 kHz "
           "stereo speech), decoded to 16 kHz mono float32 by `decode_audio`, best of the repeats, "
           "CPU time of one process.")
    lines = [title, "", how, "",
             "| format | file MiB | CPU s | audio s per core-s |", "|---|---:|---:|---:|"]
    for label, audio_s, cpu_s, size in rows:
        lines.append(f"| {label} | {size / 2**20:.1f} | {cpu_s:.3f} | {audio_s / cpu_s:,.0f} |")
    slowest = min(rows, key=lambda r: r[1] / r[2])
    per_core = slowest[1] / slowest[2]
    lines += ["", f"## Cores one GPU needs (slowest format here: {slowest[0]}, {per_core:,.0f} audio s per core-s)", "",
              "RTFx on record is for one A100; L4 and H100 are scaled by " +
              ", ".join(f"{k} {v:g}x" for k, v in GPU_SCALE.items()) + " (assumed, not measured).", "",
              "| engine | " + " | ".join(f"{g} RTFx → cores" for g in GPU_SCALE) + " |",
              "|---|" + "---:|" * len(GPU_SCALE)]
    for engine, rtfx in ENGINES.items():
        cells = [f"{rtfx * scale:,.0f} → {rtfx * scale / per_core:.2f}" for scale in GPU_SCALE.values()]
        lines.append(f"| {engine} | " + " | ".join(cells) + " |")
    lines += ["", "## What a host sustains (decode cores = host cores - 1 for the model process)", "",
              "| host | engine | GPU-bound audio h per h | decode-bound audio h per h | bound by |",
              "|---|---|---:|---:|---|"]
    for host, (gpu, cores) in HOSTS.items():
        for engine, rtfx in ENGINES.items():
            gpu_rate = rtfx * GPU_SCALE[gpu]
            decode_rate = per_core * max(cores - 1, 1)
            lines.append(f"| {host} | {engine} | {gpu_rate:,.0f} | {decode_rate:,.0f} | "
                         f"{'decode (CPU)' if decode_rate < gpu_rate else 'GPU'} |")
    lines += ["", ("Notes. A vCPU is a hyper-thread: 2 vCPU ≈ 1 core of decoding. The model process also needs CPU for "
              "log-mel features and for the quality guards' Silero VAD, measured at ~500x real time on one core "
              "(3.8 CPU s for the suite's 33 min of long files): at Parakeet's ~1,000x on an A100 that is ~2 more "
              "cores per GPU, as much as decoding needs. On CUDA the decode pool is `decode_workers` "
              "(all cores but one, at most 8) and the engine's batch "
              "comes from free GPU memory; both are recorded in each manifest row's `engine_config`.")]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    args = parser.parse_args()
    from bench.common import commit_stamp, stamped

    commit = commit_stamp()
    audio = speech_48k_stereo(args.seconds)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-decode-") as tmp:
        for label, name, codec in FORMATS:
            path = Path(tmp) / name
            encode(path, codec, audio)
            audio_s, cpu_s = measure(path, args.repeat)
            rows.append((label, audio_s, cpu_s, path.stat().st_size))
            print(f"{label}: {audio_s / cpu_s:,.0f} audio s per core-s", file=sys.stderr, flush=True)
    text = stamped(report(rows, args.seconds), commit)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
