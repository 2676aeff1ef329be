"""Who spoke when and in which language, measured on real recorded voices.

1. DER (pyannote.metrics, collar 0.25 s) of `tasks/speakers/diarize.py` on 2-, 3- and 4-speaker
   conversations assembled from four professional voices (tests/conversations.py: Allison en,
   Carlo it, Irina ru, Menardi it), turns of 1-20 s, natural pauses and a few short overlaps;
   the speakers found against the true count.
2. Cost: the same batch through the pipeline (tiny.en, CTranslate2, CPU) with and without
   `diarize`, CPU wall time, models warm; and the diarization stage's own time.
3. Language identification (Whisper base, on the VAD's speech, 10 s of silence before each clip) on
   recorded speech in five languages, with the flags tiny.en's rows would get, and the detector's
   choices (float32 or int8; 30 s padded or the speech alone) side by side: asterisk prompts in en,
   it, ru; Fish Fillets NG's dialogue lines in nl and cs (voice actors; apt-get install
   --no-install-recommends fillets-ng-data-nl fillets-ng-data-cs); and, apart, de from espeak-ng
   (synthetic).
4. tiny.en on Italian and Dutch speech: how many rows are `ok` without a language flag (must be 0).

    python bench/bench_diarize.py --out bench/results/diarize_cpu.md
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tasks.quality.vad import detect_speech
from tests.conversations import LANGUAGES, conversation, lines_available, lines_of, prompts_of

VOICES = ("allison", "carlo", "irina", "menardi")
GERMAN = ("Guten Morgen, ich rufe wegen der Rechnung vom letzten Monat an.",
          "Das Wetter in Berlin ist heute kalt und regnerisch.",
          "Können Sie mir bitte sagen, wann der nächste Zug nach München fährt?",
          "Wir treffen uns morgen um drei Uhr im Büro.",
          "Vielen Dank für Ihre Geduld, Sie werden gleich verbunden.")


def der_table(per_count: int, seed: int) -> tuple[list[str], list[float]]:
    from pyannote.core import Annotation
    from pyannote.core import Segment as Span
    from pyannote.metrics.diarization import DiarizationErrorRate

    from tasks.speakers.diarize import diarize, load_encoder

    encoder = load_encoder("cpu")
    lines = ["| speakers | conversations | audio min | DER mean | DER median | DER max | count right |",
             "|---|---|---|---|---|---|---|"]
    two: list[float] = []
    for count in (2, 3, 4):
        ders, right, minutes = [], 0, 0.0
        for n in range(per_count):
            rng = random.Random(seed + 100 * count + n)
            voices = tuple(rng.sample(VOICES, count))
            talk = conversation(voices, turns=3 * count + rng.randint(0, 3), seed=rng.randint(0, 10**6),
                                overlaps=rng.randint(1, 3), longest_turn_s=20.0)
            turns = diarize(encoder, talk.samples, detect_speech(talk.samples).spans)
            reference, found = Annotation(), Annotation()
            for start, end, voice in talk.turns:
                reference[Span(start, end)] = voice
            for turn in turns:
                found[Span(turn.start, turn.end)] = turn.speaker
            ders.append(float(DiarizationErrorRate(collar=0.25)(reference, found)))
            right += len({t.speaker for t in turns}) == count
            minutes += len(talk.samples) / 16_000 / 60
        two += ders if count == 2 else []
        lines.append(f"| {count} | {per_count} | {minutes:.1f} | {statistics.mean(ders):.3f} | "
                     f"{statistics.median(ders):.3f} | {max(ders):.3f} | {right}/{per_count} |")
    return lines, two


def cost_table(conversations: int, seed: int) -> list[str]:
    from tasks.engines import EngineConfig, load_transcriber
    from tasks.output.manifests import RunContext
    from tasks.quality.guarded import QualityOptions
    from tasks.records import Clip, MediaItem
    from tasks.speakers.diarize import diarize, load_encoder
    from tasks.speakers.stage import SpeakerOptions
    from tasks.transcribe import transcribe_batch

    rng = random.Random(seed)
    talks = [conversation(tuple(rng.sample(VOICES, 2)), turns=8, seed=rng.randint(0, 10**6), longest_turn_s=20.0)
             for _ in range(conversations)]
    clips = [Clip(f"talk-{n}.wav", t.samples) for n, t in enumerate(talks)]
    items = [MediaItem(c.key, c.key, 1, 1, hashlib.sha256(c.key.encode()).hexdigest(), c.duration_s) for c in clips]
    transcriber = load_transcriber(EngineConfig())
    ctx = RunContext("bench", "ctranslate2", "tiny.en", "0123456789abcdef")
    audio_s = sum(c.duration_s for c in clips)
    load_encoder("cpu")
    diarize(load_encoder("cpu"), clips[0].samples[:16_000 * 10], [(0.0, 10.0)])  # warm: imports, JIT
    walls = {}
    with tempfile.TemporaryDirectory() as out:
        for label, diarizing in (("off", False), ("on", True), ("off again", False), ("on again", True)):
            started = time.perf_counter()
            transcribe_batch(items, clips, 0, transcriber, Path(out), ctx, QualityOptions(),
                             SpeakerOptions(diarize=diarizing, device="cpu"))
            walls[label] = time.perf_counter() - started
    started = time.perf_counter()
    for clip in clips:
        diarize(load_encoder("cpu"), clip.samples, detect_speech(clip.samples).spans)
    stage = time.perf_counter() - started
    off, on = min(walls["off"], walls["off again"]), min(walls["on"], walls["on again"])
    head = ("| audio | pipeline, diarize off | pipeline, diarize on | added | diarization stage alone "
            "(VAD + embed + cluster) | stage / diarize-off wall |")
    row = (f"| {audio_s / 60:.1f} min ({conversations} conversations) | {off:.1f} s | {on:.1f} s | "
           f"{100 * (on - off) / off:+.1f} % | {stage:.1f} s | {100 * stage / off:.1f} % |")
    runs = ", ".join(f"{k} {v:.1f} s" for k, v in walls.items())
    return [head, "|---|---|---|---|---|---|", row, "", f"Each pipeline figure is the faster of two runs ({runs})."]


def language_clips(per_language: int, seed: int, seconds: float = 4) -> dict[str, list[np.ndarray]]:
    """Real recordings per language, about `seconds` of speech each after 10 s of silence, and German from
    espeak-ng apart."""
    clips: dict[str, list[np.ndarray]] = {"en": [], "it": [], "ru": [], "nl": [], "cs": [], "de": []}
    silence = np.zeros(16_000 * 10, np.float32)
    for voice in VOICES:
        for n in range(per_language // (2 if LANGUAGES[voice] == "it" else 1)):
            clips[LANGUAGES[voice]].append(np.concatenate([silence, prompts_of(voice, random.Random(seed + n),
                                                                               seconds)]))
    for language in ("nl", "cs"):
        if not lines_available(language):
            sys.exit(f"needs fillets-ng-data-{language}: "
                     f"apt-get install --no-install-recommends fillets-ng-data-{language}")
        rng = random.Random(seed)
        clips[language] = [np.concatenate([silence, lines_of(language, rng, seconds)]) for _ in range(per_language)]
    with tempfile.TemporaryDirectory() as tmp:
        for n, text in enumerate(GERMAN):
            path = Path(tmp) / f"de-{n}.wav"
            subprocess.run(["espeak-ng", "-v", "de", "-w", str(path), text], check=True)
            clips["de"].append(np.concatenate([silence, _read(path)]))
    return clips


def language_table(clips: dict[str, list[np.ndarray]]) -> list[str]:
    """The pipeline's two detectors per language: a `--model whisper-base` run's own model (float32, 30 s),
    and Whisper base in int8 on the speech alone for a tiny.en run, with the flags tiny.en's rows get."""
    from faster_whisper import WhisperModel

    from tasks.models import whisper_base_ct2
    from tasks.speakers.language import detect, detector_for, language_flags

    own = WhisperModel(str(whisper_base_ct2()), device="cpu", compute_type="float32", local_files_only=True)
    checker = detector_for(object(), None)
    english = frozenset({"en"})
    lines = [("| language | source | clips | whisper-base run: right | mean p | tiny.en run: right | "
             "tiny.en rows unflagged |"), "|---|---|---|---|---|---|---|"]
    for language, samples in clips.items():
        found = [detect_speech(s) for s in samples]
        named = [detect(own, s, f) for s, f in zip(samples, found, strict=True)]
        checked = [detect(checker, s, f, fit=True) for s, f in zip(samples, found, strict=True)]
        right = sum(1 for g in named if g and g.code == language)
        right_checked = sum(1 for g in checked if g and g.code == language)
        unflagged = sum(1 for g in checked if not language_flags(g, english, True))
        source = {"de": "espeak-ng (synthetic)", "nl": "Fish Fillets NG dialogue (recorded)",
                  "cs": "Fish Fillets NG dialogue (recorded)"}.get(language, "asterisk prompts (recorded)")
        mean_p = statistics.mean(g.probability for g in named if g)
        wrong = sorted({g.code for g in named if g and g.code != language})
        lines.append(f"| {language} | {source} | {len(samples)} | {right} ({right / len(samples):.0%}) | {mean_p:.2f}"
                     + (f" (wrong: {', '.join(wrong)})" if wrong else "") + f" | {right_checked} | {unflagged} |")
    return lines


def detector_variants(clips: dict[str, list[np.ndarray]]) -> list[str]:
    """float32 against int8, and 30 s padded with silence (faster-whisper's `detect_language`) against the
    speech alone (`detect`), on the real recordings: right guesses, tiny.en's flags, time per file."""
    from faster_whisper import WhisperModel

    from tasks.models import whisper_base_ct2
    from tasks.speakers.language import LanguageGuess, detect, language_flags, speech_sample

    english = frozenset({"en"})
    real = {k: v for k, v in clips.items() if k != "de"}
    speech = {k: [detect_speech(s) for s in v] for k, v in real.items()}
    lines = ["| compute | encoder hears | right | English rows flagged | other rows unflagged | ms per file |",
             "|---|---|---|---|---|---|"]
    for compute in ("float32", "int8"):
        whisper = WhisperModel(str(whisper_base_ct2()), device="cpu", compute_type=compute, local_files_only=True)
        for padded in (True, False):
            right = flagged_en = unflagged = total = 0
            began = time.perf_counter()
            for language, samples in real.items():
                for s, found in zip(samples, speech[language], strict=True):
                    if padded:
                        code, p, ranked = whisper.detect_language(speech_sample(s, found))
                        guess: LanguageGuess | None = LanguageGuess(code, p, tuple(ranked))
                    else:
                        guess = detect(whisper, s, found, fit=True)
                    flags = language_flags(guess, english, True)
                    total += 1
                    right += bool(guess and guess.code == language)
                    flagged_en += language == "en" and bool(flags)
                    unflagged += language != "en" and not flags
            ms = (time.perf_counter() - began) / total * 1000
            lines.append(f"| {compute} | {'30 s, speech padded with silence' if padded else 'the speech alone'} "
                         f"| {right}/{total} | {flagged_en}/{len(real['en'])} | {unflagged}/{total - len(real['en'])} "
                         f"| {ms:.0f} |")
    return lines


def _read(path: Path) -> np.ndarray:
    import wave

    with wave.open(str(path)) as handle:
        rate, data = handle.getframerate(), handle.readframes(handle.getnframes())
    samples = np.frombuffer(data, "<i2").astype(np.float32) / 32768
    return np.interp(np.arange(0, len(samples), rate / 16_000), np.arange(len(samples)), samples).astype(np.float32)


def mismatch_rows(count: int, seed: int) -> list[str]:
    from tasks.engines import EngineConfig, load_transcriber
    from tasks.output.manifests import RunContext
    from tasks.records import Clip, MediaItem
    from tasks.transcribe import transcribe_batch

    clips = [Clip(f"it-{n}.wav", prompts_of(("carlo", "menardi")[n % 2], random.Random(seed + n), 8))
             for n in range(count)]
    clips += [Clip(f"nl-{n}.wav", lines_of("nl", random.Random(seed + n), 8)) for n in range(count)]
    items = [MediaItem(c.key, c.key, 1, 1, hashlib.sha256(c.key.encode()).hexdigest(), c.duration_s) for c in clips]
    with tempfile.TemporaryDirectory() as out:
        outcome = transcribe_batch(items, clips, 0, load_transcriber(EngineConfig()), Path(out),
                                   RunContext("bench", "ctranslate2", "tiny.en", "0123456789abcdef"))
    lines = ["| language | files | ok rows | flagged language_mismatch/unverified | unflagged ok |",
             "|---|---|---|---|---|"]
    for language, name in (("it", "Italian (asterisk)"), ("nl", "Dutch (Fish Fillets NG)")):
        rows = [r for r in outcome.results if r.item.source.startswith(f"{language}-")]
        unflagged = [r for r in rows if r.status == "ok" and r.transcript and not any(
            f.startswith("language_") for f in (r.transcript.quality.flags if r.transcript.quality else ()))]
        ok = sum(r.status == "ok" for r in rows)
        lines.append(f"| {name} | {len(rows)} | {ok} | {ok - len(unflagged)} | **{len(unflagged)}** |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-count", type=int, default=5, help="conversations per speaker count")
    parser.add_argument("--cost-conversations", type=int, default=3)
    parser.add_argument("--per-language", type=int, default=20)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True,
                            cwd=ROOT).stdout
    der, two = der_table(args.per_count, args.seed)
    clips = language_clips(args.per_language, args.seed)
    languages, variants = language_table(clips), detector_variants(clips)
    longer = language_table(language_clips(args.per_language, args.seed, 12))
    title = (f"# Diarization and language identification ({platform.node()}, {datetime.now(UTC):%Y-%m-%d}, "
             f"commit {commit.strip()})")
    how = "`python bench/bench_diarize.py` (CPU, 2 cores shared with other jobs: timings are noisy)."
    report = [title, "", how, "", "## DER, collar 0.25 s (real recorded voices)", "", *der, "",
              f"Two speakers: DER {statistics.mean(two):.3f} mean over {len(two)} conversations.", "",
              "## Cost (CPU wall time, tiny.en)", "", *cost_table(args.cost_conversations, args.seed), "",
              "## Language identification (Whisper base on the speech; 10 s of silence first)", "", *languages, "",
              ("About 4 s of speech per clip. whisper-base run: the run's own model names the language, its "
               "encoder hearing Whisper's 30 s. tiny.en run: Whisper base in int8 hears the speech alone; "
               "tiny.en rows unflagged: how many rows the English-only model is left without a language flag "
               "(must be all the English ones and none of the others)."), "", "About 12 s of speech per clip:",
              "", *longer, "",
              "### The detector's choices, on the real recordings", "", *variants, "",
              "## tiny.en (English only) on other languages", "", *mismatch_rows(4, args.seed), ""]
    text = "\n".join(report)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
