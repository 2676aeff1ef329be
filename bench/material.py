"""The throughput suite's speech: festival voices at several speaking rates, pauses, noise and music beds.

Needs Debian's `festival festvox-us-slt-hts festvox-kallpc16k sox pocketsphinx-testdata
asterisk-core-sounds-en-wav`. References
are the text that was synthesised. Two voices: the HTS statistical voice `cmu_us_slt_arctic_hts`
(natural-sounding; its speaking rate is hts_engine's speed factor `-r`, since it ignores festival's
`Duration_Stretch`) and the diphone voice `kal_diphone` (rate via `Duration_Stretch`). Each Harvard
sentence is synthesised once per (voice, rate) and cached; libraries are assembled from that pool.

- short: 2-10 s clips, one or two sentences with a pause, a third of them over a noise bed (pink
  noise at -30 dB) or a music bed (a chord of sine tones at -32 dB), MP3; plus the real recordings
  of `pocketsphinx-testdata` whose text is known (`goforward.raw`, `tidigits/dhd.2934z.raw`). Its
  `librivox/` and `cards/` folders are never read: they are reserved for independent checks.
- prompts: real recorded speech, one human voice: the 2-10 s prompts of Debian's
  `asterisk-core-sounds-en-wav` (8 kHz telephone WAV, as a voicemail or IVR archive holds it) whose
  text the package lists in `core-sounds-en.txt`, tones, silences and notes left out: 180 clips.
- long: files of the given minutes, sentences in a row with 0.3-2.0 s pauses, one voice and rate
  per stretch of ~2 min, one file over a noise bed, M4A.

    python bench/material.py --out /tmp/speech --long-minutes 3,10,20
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RATE = 16_000
VOICES = {  # voice → (festival voice, how to set the rate) per rate factor (>1: slower)
    "slt": "(voice_cmu_us_slt_arctic_hts)",
    "kal": "(voice_kal_diphone)",
}
STRETCHES = (0.85, 1.0, 1.2)
POCKETSPHINX = Path("/usr/share/pocketsphinx/test/data")
REAL = {"goforward.raw": "go forward ten meters", "tidigits/dhd.2934z.raw": "two nine three four zero"}
RESERVED = ("librivox", "cards")  # pocketsphinx-testdata folders kept for independent checks
ASTERISK = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
ASTERISK_TEXT = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")

Audio = npt.NDArray[np.float32]


def sentences() -> list[str]:
    path = ROOT / "examples" / "harvard_sentences.txt"
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def synthesise(text: str, voice: str, stretch: float, cache: Path) -> Audio:
    """One sentence in one voice at one rate, 16 kHz mono float32 (cached by its inputs)."""
    key = hashlib.sha256(f"{voice}|{stretch}|{text}".encode()).hexdigest()[:16]
    wav = cache / f"{key}.wav"
    if not wav.exists():
        cache.mkdir(parents=True, exist_ok=True)
        rate = (f'(set! hts_engine_params (cons (list "-r" {1 / stretch:.3f}) hts_engine_params))' if voice == "slt"
                else f"(Parameter.set 'Duration_Stretch {stretch})")
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as handle:
            handle.write(text)
            handle.flush()
            subprocess.run(["text2wave", "-eval", VOICES[voice], "-eval", rate, "-F", str(RATE), handle.name,
                            "-o", str(wav)], check=True, capture_output=True)
    return _read_wav(wav)


def _read_wav(path: Path) -> Audio:
    from tasks.media.audio import decode_audio

    return decode_audio(path, None)


def bed(kind: str, seconds: float, seed: int) -> Audio:
    """A background: pink noise at about -30 dB or a sine chord at about -32 dB, made by sox."""
    audio: Audio
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bed.wav"
        synth = (["synth", f"{seconds:.2f}", "pinknoise", "vol", "0.03"] if kind == "noise" else
                 ["synth", f"{seconds:.2f}", "sine", "220", "sine", "277", "sine", "330", "remix", "-", "vol", "0.025"])
        # -R: sox's repeatable random numbers, so the noise is the same on every build
        subprocess.run(["sox", "-R", "-n", "-r", str(RATE), "-c", "1", "-b", "16", str(out), *synth],
                       check=True, capture_output=True)
        audio = _read_wav(out)
    shift = seed % max(1, len(audio) // 2)  # a different stretch of the bed for each clip
    return np.roll(audio, shift)


def _with_bed(speech: Audio, kind: str, seed: int) -> Audio:
    background = bed(kind, len(speech) / RATE + 0.1, seed)[: len(speech)]
    mixed = speech.copy()
    mixed[: len(background)] += background
    return np.clip(mixed, -1, 1).astype(np.float32)


def build_short(root: Path, count: int, cache: Path, seed: int = 11) -> dict[str, str]:
    """`count` synthetic clips of 2-10 s plus the known real recordings; source → reference."""
    from tests.media_factory import write_audio

    rng = random.Random(seed)
    pool = sentences()
    references: dict[str, str] = {}
    for n in range(count):
        voice, stretch = rng.choice(tuple(VOICES)), rng.choice(STRETCHES)
        picked = [rng.choice(pool)] + ([rng.choice(pool)] if n % 2 else [])
        parts: list[Audio] = [np.zeros(int(RATE * rng.uniform(0.1, 0.5)), np.float32)]
        for text in picked:
            parts += [synthesise(text, voice, stretch, cache), np.zeros(int(RATE * rng.uniform(0.3, 1.2)), np.float32)]
        clip = np.concatenate(parts)[: 10 * RATE]
        if len(clip) > 10 * RATE - 1:  # two long sentences: keep the first only
            picked, clip = picked[:1], np.concatenate(parts[:3])
        if n % 3 == 1:
            clip = _with_bed(clip, "noise" if n % 2 else "music", n)
        source = f"clip_{n:03d}_{voice}_{stretch}.mp3"
        write_audio(root / source, clip, RATE, codec="libmp3lame")
        references[source] = " ".join(picked)
    for name, text in REAL.items():
        assert not name.startswith(RESERVED)
        raw = np.frombuffer((POCKETSPHINX / name).read_bytes(), dtype="<i2").astype(np.float32) / 32768
        source = f"real_{Path(name).stem}.wav"
        write_audio(root / source, raw, RATE)
        references[source] = text
    return references


def build_prompts(root: Path, shortest_s: float = 2.0, longest_s: float = 10.0) -> dict[str, str]:
    """The real recorded asterisk prompts of `shortest_s`-`longest_s` whose text is listed; source → reference."""
    import gzip
    import shutil
    import wave

    if not ASTERISK_TEXT.exists():
        raise SystemExit(f"{ASTERISK_TEXT} is missing: apt-get install asterisk-core-sounds-en-wav")
    references: dict[str, str] = {}
    root.mkdir(parents=True, exist_ok=True)
    with gzip.open(ASTERISK_TEXT, "rt") as listed:
        lines = listed.read().splitlines()
    for line in lines:
        name, _, text = line.partition(":")
        wav, text = ASTERISK / f"{name.strip()}.wav", text.strip()
        if line.startswith(";") or not text or "[" in text or "(" in text or not wav.is_file():
            continue
        with wave.open(str(wav)) as opened:
            seconds = opened.getnframes() / opened.getframerate()
        if shortest_s <= seconds <= longest_s:
            source = name.strip().replace("/", "_") + ".wav"
            shutil.copyfile(wav, root / source)
            references[source] = text
    return references


def build_long(root: Path, minutes: list[float], cache: Path, seed: int = 5) -> dict[str, str]:
    """One file per entry of `minutes`; source → reference."""
    from tests.media_factory import write_audio

    rng = random.Random(seed)
    pool = sentences()
    references: dict[str, str] = {}
    for f, length in enumerate(minutes):
        parts: list[Audio] = []
        said: list[str] = []
        total = 0.0
        voice, stretch = rng.choice(tuple(VOICES)), rng.choice(STRETCHES)
        while total < length * 60:
            if rng.random() < 1 / 40:  # a new speaker or pace every ~2 min
                voice, stretch = rng.choice(tuple(VOICES)), rng.choice(STRETCHES)
            text = rng.choice(pool)
            speech = synthesise(text, voice, stretch, cache)
            pause = np.zeros(int(RATE * rng.uniform(0.3, 2.0)), np.float32)
            parts += [speech, pause]
            said.append(text)
            total += (len(speech) + len(pause)) / RATE
        audio = np.concatenate(parts)
        if f == 1:
            audio = _with_bed(audio, "noise", 100 + f)
        source = f"long_{f}_{length:g}min.m4a"
        write_audio(root / source, audio, RATE, codec="aac")
        references[source] = " ".join(said)
    return references


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--short", type=int, default=60)
    parser.add_argument("--long-minutes", default="3,10,20")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "transcribe-all-festival")
    args = parser.parse_args()
    refs = {"short": build_short(args.out / "short", args.short, args.cache),
            "prompts": build_prompts(args.out / "prompts"),
            "long": build_long(args.out / "long", [float(m) for m in args.long_minutes.split(",")], args.cache)}
    (args.out / "references.json").write_text(json.dumps(refs, indent=1))
    print(f"wrote {sum(len(r) for r in refs.values())} files under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
