"""Parakeet-TDT (e.g. `nvidia/parakeet-tdt-0.6b-v3`, named by the user) on NeMo, with long-audio modes.

NeMo is imported only here: its import costs seconds and most of a GB. The model is
loaded once per process (`_load_model` is cached), kept in eval mode, and run under
bfloat16 (or float16) autocast on CUDA. Each file gets the cheapest attention mode
that fits (`nemo_longform.choose_mode`); an out-of-memory error halves the batch,
and a file that fails alone moves to the next mode (full → local → buffered). The
mode, any fallback and any halving go into `Transcript.info`, hence the manifest.

Segments are built from TDT word timestamps by one rule in every mode
(`segment_words`), so SRT/VTT cues look alike whether a file was streamed or not.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tasks.engines.base import EngineConfig, EngineError
from tasks.engines.nemo_longform import (
    MODES,
    LongformPolicy,
    choose_mode,
    mode_limits,
    next_mode,
    plan_chunks,
    run_halving,
    segment_words,
    stitch_words,
)
from tasks.engines.options import NemoOptions, engine_options
from tasks.engines.words import transcript_of
from tasks.records import Clip, Transcript, Word

log = logging.getLogger(__name__)

Samples = npt.NDArray[np.float32]
INSTALL_HINT = "install the nemo extra: pip install -c constraints/cpu.txt 'transcribe-all[nemo]'"


@lru_cache(maxsize=2)
def _load_model(model: str, device: str) -> Any:
    """A `.nemo` file from a local path (`restore_from`) or a hub id (`from_pretrained`, needs network)."""
    try:
        from nemo.collections.asr.models import ASRModel
    except ImportError as error:
        raise EngineError(f"the nemo engine requires NeMo: {INSTALL_HINT}") from error
    try:
        if Path(model).exists():
            asr = ASRModel.restore_from(model, map_location=device)
        else:
            asr = ASRModel.from_pretrained(model, map_location=device)
    except Exception as error:
        raise EngineError(
            f"cannot load NeMo model {model!r}: {error}. Offline, pass a local .nemo file with --model PATH"
        ) from error
    return asr.eval()


class NemoParakeet:
    engine = "nemo"

    def __init__(self, config: EngineConfig, model: str, cpu_threads: int = 0) -> None:
        try:
            import torch
        except ImportError as error:  # pragma: no cover - torch comes with the extra
            raise EngineError(f"the nemo engine requires torch: {INSTALL_HINT}") from error
        self.policy: LongformPolicy = engine_options(config, NemoOptions)  # validated at the boundary
        self.config, self.model = config, model
        self.device = config.device if config.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        self.compute_type = _compute_type(config.compute_type, self.device)
        self.batch_size = config.batch_size or (16 if self.device == "cuda" else 4)
        if cpu_threads > 0 and self.device == "cpu":
            torch.set_num_threads(cpu_threads)
        self._asr = _load_model(model, self.device)
        full_s, local_s = mode_limits(self._free_bytes(), self.policy, self._bytes_per_value)
        log.info("nemo %s on %s (%s): full attention up to %.0f s, local up to %.0f s, then buffered",
                 model, self.device, self.compute_type, full_s, local_s)

    def settings(self) -> dict[str, str]:
        p = self.policy
        return {
            "device": self.device, "compute_type": self.compute_type, "batch_size": str(self.batch_size),
            "mode": p.mode, "full_max_s": str(p.full_max_s), "local_max_s": str(p.local_max_s),
            "reference_gb": str(p.reference_gb), "local_context": f"{p.local_left},{p.local_right}",
            "chunking": f"{p.chunk_s}/{p.left_s}/{p.right_s}", "chunk_batch": str(p.chunk_batch),
        }

    def transcribe(self, clips: Sequence[Clip]) -> list[Transcript]:
        free = self._free_bytes()
        trails = [[choose_mode(c.duration_s, free, self.policy, self._bytes_per_value)] for c in clips]
        words: list[tuple[Word, ...] | None] = [None] * len(clips)
        notes: list[dict[str, str]] = [{} for _ in clips]
        for mode in MODES:  # in fallback order: a file that falls back is taken up by a later pass
            todo = [i for i, trail in enumerate(trails) if words[i] is None and trail[-1] == mode]
            if not todo:
                continue
            results, halved_to = self._run(mode, [clips[i] for i in todo])
            for i, result in zip(todo, results, strict=True):
                if halved_to is not None:
                    notes[i][f"{mode}_batch_halved_to"] = str(halved_to)
                if result is not None:
                    words[i] = result
                elif (fallback := next_mode(mode)) is not None:
                    log.warning("%s: out of memory in %s mode, falling back to %s", clips[i].key, mode, fallback)
                    trails[i].append(fallback)
                else:
                    raise EngineError(
                        f"{clips[i].key}: out of memory even on one {self.policy.chunk_s:g} s buffered chunk; "
                        "lower the chunk_s option or free accelerator memory"
                    )
        return [self._transcript(w or (), t, n) for w, t, n in zip(words, trails, notes, strict=True)]

    def _run(self, mode: str, clips: Sequence[Clip]) -> tuple[list[tuple[Word, ...] | None], int | None]:
        if mode == "buffered":
            return self._run_buffered(clips)
        with self._local_attention() if mode == "local" else nullcontext():
            order = sorted(range(len(clips)), key=lambda i: -len(clips[i].samples))  # similar lengths share a batch
            results, halved_to = self._halving([clips[i].samples for i in order], self.batch_size)
        words: list[tuple[Word, ...] | None] = [None] * len(clips)
        for position, index in enumerate(order):
            found = results[position]
            words[index] = None if found is None else _clamp(found, clips[index].duration_s)
        return words, halved_to

    def _run_buffered(self, clips: Sequence[Clip]) -> tuple[list[tuple[Word, ...] | None], int | None]:
        plans = [plan_chunks(len(clip.samples), self.policy) for clip in clips]
        windows = [clip.samples[c.start:c.end] for clip, plan in zip(clips, plans, strict=True) for c in plan]
        results, halved_to = self._halving(windows, self.policy.chunk_batch)
        stitched: list[tuple[Word, ...] | None] = []
        position = 0
        for plan in plans:
            found = results[position:position + len(plan)]
            position += len(plan)
            stitched.append(None if any(r is None for r in found) else stitch_words(plan, found))  # type: ignore[arg-type]
        return stitched, halved_to

    def _halving(self, samples: Sequence[Samples], batch_size: int) -> tuple[list[tuple[Word, ...] | None], int | None]:
        return run_halving(samples, batch_size, self._decode, _is_oom, self._empty_cache)

    def _decode(self, batch: Sequence[Samples]) -> list[tuple[Word, ...]]:
        """One forward pass and greedy TDT decode of a batch; word times on each input's own clock."""
        import torch

        autocast = (torch.autocast("cuda", dtype=getattr(torch, self.compute_type))
                    if self.device == "cuda" and self.compute_type != "float32" else nullcontext())
        with autocast:
            hypotheses = self._asr.transcribe(list(batch), batch_size=len(batch), timestamps=True, verbose=False)
        if isinstance(hypotheses, tuple):  # some NeMo versions return (best, all)
            hypotheses = hypotheses[0]
        return [_words(h) for h in hypotheses]

    @contextmanager
    def _local_attention(self) -> Iterator[None]:
        encoder = self._asr.encoder
        before = (encoder.self_attention_model, list(encoder.att_context_size))
        self._asr.change_attention_model("rel_pos_local_attn", [self.policy.local_left, self.policy.local_right])
        self._asr.change_subsampling_conv_chunking_factor(1)  # the subsampling convs chunk long inputs themselves
        try:
            yield
        finally:
            self._asr.change_attention_model(*before)

    def _transcript(self, words: tuple[Word, ...], trail: list[str], notes: dict[str, str]) -> Transcript:
        info = {"mode": trail[-1], **notes}
        if len(trail) > 1:
            info["fallback"] = " -> ".join(trail) + " (out of memory)"
        if trail[-1] == "buffered":
            p = self.policy
            info["chunking"] = f"{p.chunk_s:g}s chunks, {p.left_s:g}s left, {p.right_s:g}s right"
        return transcript_of(segment_words(words, self.policy), self.config.language, info=info)

    @property
    def _bytes_per_value(self) -> int:
        return 4 if self.compute_type == "float32" else 2

    def _free_bytes(self) -> int | None:
        import torch

        if self.device == "cuda":
            return int(torch.cuda.mem_get_info()[0])
        return _mem_available()

    def _empty_cache(self) -> None:
        import torch

        if self.device == "cuda":
            torch.cuda.empty_cache()


def _compute_type(requested: str, device: str) -> str:
    if requested != "auto":
        if requested not in ("float32", "float16", "bfloat16"):
            raise EngineError(f"compute_type: the nemo engine runs float32, float16 or bfloat16, not {requested!r}")
        return requested
    if device != "cuda":
        return "float32"
    import torch

    return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"


def _words(hypothesis: Any) -> tuple[Word, ...]:
    stamps = (getattr(hypothesis, "timestamp", None) or {}).get("word", [])
    return tuple(
        Word(round(float(w["start"]), 3), round(float(w["end"]), 3), str(w["word"]).strip())
        for w in stamps if str(w["word"]).strip()
    )


def _clamp(words: tuple[Word, ...], duration_s: float) -> tuple[Word, ...]:
    """Frame-rounded times can pass the end of the audio by a frame: keep them inside it."""
    limit = round(duration_s, 3)
    return tuple(Word(min(w.start, limit), min(w.end, limit), w.word, w.probability) for w in words)


def _is_oom(error: BaseException) -> bool:
    import torch

    if isinstance(error, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _mem_available() -> int | None:
    """MemAvailable from /proc/meminfo (Linux); None elsewhere: the reference limits then apply as is."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
