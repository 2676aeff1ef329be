"""Whisper on transformers: the GPU engine (float16, FlashAttention-2, dynamic batching).

The model is loaded directly (`AutoModelForSpeechSeq2Seq` + `AutoProcessor`), not
through `pipeline()`, so one `generate` call decodes a whole batch of 30 s windows
drawn from many files, with attention masks. Windows are sorted by length before
batching so rows of a batch finish near the same step. Files longer than 30 s are
cut into overlapping windows and stitched by word times (`windows.py`). Packing short
files into shared windows (`packing.py`, opt-in in the CTranslate2 engine too) needs
`pack_short_clips` and `pack=on`: it was 4-7x slower here than batching them unpacked, and
a packed clip's text depends on its neighbours; unpacked, it does not (`test_neighbours.py`).

Word times come from transformers' cross-attention alignment, which switches the
model to eager attention for that call; the chosen attention is put back after it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tasks.engines.base import EngineConfig, EngineError
from tasks.engines.hardware import auto_batch_size, choose_attention, choose_dtype, window_bytes
from tasks.engines.options import TransformersOptions, engine_options
from tasks.engines.packing import Pack, build_pack, plan_packs, split_pack
from tasks.engines.whisper_tokens import Decoded, Vocabulary, parse_tokens
from tasks.engines.windows import Span, batches, plan_spans, quietest, stitch
from tasks.engines.words import transcript_of
from tasks.records import SAMPLE_RATE, Clip, Transcript

log = logging.getLogger(__name__)

WINDOW_S = 30.0
OVERLAP_S = 4.0  # long files: a window hears at least this far past the end of what it owns
PACK_WINDOW_S, GAP_S, PACK_MAX_CLIP_S = 28.0, 1.0, 20.0  # as in the CTranslate2 engine
CPU_BATCH = 8  # on a few CPU cores batching barely helps; this bounds memory


@dataclass(frozen=True, slots=True)
class _Window:
    samples: npt.NDArray[np.float32]
    words: bool  # needs word times (packed, long, or asked for)


class TransformersWhisper:
    engine = "transformers"

    def __init__(self, config: EngineConfig, model: str, cpu_threads: int = 0) -> None:
        try:
            import torch
            from transformers.utils import logging as hf_logging
        except ImportError as error:
            raise EngineError(
                "the transformers engine requires torch and transformers: pip install 'transcribe-all[whisper]'"
            ) from error
        # a batch tool: no weight-loading bars, and not one deprecation notice per generate() call
        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        self.config, self.model = config, model
        if cpu_threads:
            torch.set_num_threads(cpu_threads)
        cuda = torch.cuda.is_available()
        if config.device == "cuda" and not cuda:
            raise EngineError("device: cuda was asked for but torch sees no CUDA device; use --device cpu")
        self.device = "cuda" if config.device in ("auto", "cuda") and cuda else "cpu"
        self.dtype = choose_dtype(self.device, config)
        self.attention = choose_attention(self.device == "cuda", engine_options(config, TransformersOptions).attention)
        self._processor, self._model = _load(model, self.dtype, self.attention, self.device)
        self._torch = torch
        self._vocab = _vocabulary(self._processor.tokenizer, self._model.generation_config)
        self.batch_size = config.batch_size or self._auto_batch_size()
        log.info(
            "transformers whisper %s on %s (%s, attention %s, batch %d)",
            model,
            self.device,
            self.dtype,
            self.attention,
            self.batch_size,
        )

    def settings(self) -> dict[str, str]:
        return {
            "device": self.device,
            "dtype": self.dtype,
            "attention": self.attention,
            "batch_size": str(self.batch_size),
            "beam_size": str(self.config.beam_size),
        }

    def transcribe(self, clips: Sequence[Clip]) -> list[Transcript]:
        windows: list[_Window] = []
        packs = self._packs(clips)
        packed = {index for members in packs for index in members}
        built = [build_pack([c.samples for c in clips], members, GAP_S) for members in packs]
        windows.extend(_Window(pack.samples, words=True) for pack in built)
        plans: list[tuple[int, list[Span], int]] = []
        for index, clip in enumerate(clips):
            if index in packed:
                continue
            spans = plan_spans(clip.duration_s, WINDOW_S, OVERLAP_S, quietest(clip.samples, SAMPLE_RATE))
            plans.append((index, spans, len(windows)))
            words = self.config.word_timestamps or len(spans) > 1
            windows.extend(_Window(_cut(clip.samples, span), words) for span in spans)
        decoded = self.decode_windows(windows)
        return self._assemble(clips, built, plans, decoded)

    def _assemble(
        self,
        clips: Sequence[Clip],
        packs: list[Pack],
        plans: list[tuple[int, list[Span], int]],
        decoded: list[Decoded],
    ) -> list[Transcript]:
        results: list[Transcript | None] = [None] * len(clips)
        unclean: list[int] = []  # clips of packs whose split could leak words: decoded alone below
        for window, pack in enumerate(packs):
            split = split_pack(pack, decoded[window], GAP_S, self._language) or [None] * len(pack.members)
            for index, transcript in zip(pack.members, split, strict=True):
                if transcript is None:
                    unclean.append(index)
                results[index] = transcript
        alone = self.decode_windows([_Window(clips[i].samples, self.config.word_timestamps) for i in unclean])
        for index, got in zip(unclean, alone, strict=True):
            results[index] = _transcript(got, self._language, self.config.word_timestamps)
        for index, spans, first in plans:
            if len(spans) == 1:
                results[index] = _transcript(decoded[first], self._language, self.config.word_timestamps)
            else:
                results[index] = stitch(
                    list(zip(spans, decoded[first : first + len(spans)], strict=True)), self._language
                )
        return [r for r in results if r is not None]

    def decode_windows(self, windows: Sequence[_Window]) -> list[Decoded]:
        """Every window decoded, in order: batched by need for word times, then by length."""
        out: list[Decoded] = [[] for _ in windows]
        for words in (False, True):
            chosen = [i for i, w in enumerate(windows) if w.words == words and len(w.samples)]
            for batch in batches([len(windows[i].samples) for i in chosen], self.batch_size):
                rows = [chosen[b] for b in batch]
                tokens, times = self.generate([windows[i].samples for i in rows], words)
                for row, index in enumerate(rows):
                    duration = len(windows[index].samples) / SAMPLE_RATE
                    out[index] = parse_tokens(
                        tokens[row], times[row] if times else None, self._vocab, duration
                    )
        return out

    def generate(
        self, samples: Sequence[npt.NDArray[np.float32]], words: bool, timestamps: bool = True
    ) -> tuple[list[list[int]], list[list[float]] | None]:
        """Greedy (or beam) token ids for a batch of windows of at most 30 s, with token end times if `words`."""
        features, mask = self.features(samples)
        kwargs: dict[str, Any] = {
            "attention_mask": mask,
            "return_timestamps": timestamps,
            "num_beams": self.config.beam_size,
            "do_sample": False,
            "return_token_timestamps": words,
        }
        if self._model.generation_config.is_multilingual:
            kwargs.update(language=self.config.language, task="transcribe")
        with self._torch.inference_mode(), self._attention_restored():
            output = self._model.generate(features, **kwargs)
        sequences = output["sequences"] if words else output
        times = output["token_timestamps"].tolist() if words else None
        return sequences.tolist(), times

    def features(self, samples: Sequence[npt.NDArray[np.float32]]) -> tuple[Any, Any]:
        """Log-mel features of each window, padded to 30 s *after* the log-mel, and their attention mask.

        openai/whisper and faster-whisper pad a short window with zeros in the normalised
        log-mel domain; the transformers processor pads the audio (giving the log-mel of
        silence). The model decodes some words differently on the two, so this follows
        the original: same text as the CTranslate2 engine on the same audio.
        """
        extractor = self._processor.feature_extractor
        batch = np.zeros((len(samples), extractor.feature_size, extractor.nb_max_frames), dtype=np.float32)
        mask = np.zeros((len(samples), extractor.nb_max_frames), dtype=np.int64)
        for row, audio in enumerate(samples):
            audio = audio[: extractor.n_samples]
            frames = len(audio) // extractor.hop_length
            tail = np.zeros(extractor.n_fft, dtype=np.float32)  # the STFT of the last frames sees silence
            mel = extractor(
                np.concatenate([audio, tail]),
                sampling_rate=SAMPLE_RATE,
                padding="longest",
                return_tensors="np",
            ).input_features[0]
            batch[row, :, :frames] = mel[:, :frames]
            mask[row, :frames] = 1
        torch = self._torch
        features = torch.from_numpy(batch).to(self.device, getattr(torch, self.dtype))
        return features, torch.from_numpy(mask).to(self.device)

    @contextmanager
    def _attention_restored(self) -> Iterator[None]:
        config = self._model.config
        chosen = config._attn_implementation
        try:
            yield
        finally:
            config._attn_implementation = chosen

    @property
    def _language(self) -> str | None:
        return self.config.language or (None if self._model.generation_config.is_multilingual else "en")

    def _packs(self, clips: Sequence[Clip]) -> list[list[int]]:
        # Opt-in here (extra option pack=on): measured 4-7x slower on CPU than batching the clips
        # unpacked, since split-back needs word times and the longer windows re-seek.
        if not (self.config.pack_short_clips and engine_options(self.config, TransformersOptions).pack):
            return []
        short = [i for i, c in enumerate(clips) if c.duration_s <= PACK_MAX_CLIP_S]
        plans = plan_packs([clips[i].duration_s for i in short], PACK_WINDOW_S, GAP_S)
        return [[short[m] for m in members] for members in plans if len(members) > 1]

    def _auto_batch_size(self) -> int:
        if self.device != "cuda":
            return CPU_BATCH
        cfg = self._model.config
        free, _total = self._torch.cuda.mem_get_info()
        per_window = window_bytes(
            cfg.d_model,
            cfg.decoder_layers,
            cfg.encoder_attention_heads,
            self._model.dtype.itemsize,
            self.config.beam_size,
            self.attention == "eager",
        )
        return auto_batch_size(free, per_window)


def _load(model: str, dtype: str, attention: str, device: str) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

    source, local = _source(model)
    try:
        processor = AutoProcessor.from_pretrained(source, local_files_only=local)
        whisper = AutoModelForSpeechSeq2Seq.from_pretrained(
            source, dtype=getattr(torch, dtype), attn_implementation=attention, local_files_only=local
        )
    except (OSError, ValueError, ImportError) as error:
        raise EngineError(
            f"cannot load transformers Whisper model from {model}: {_first_line(error)}"
        ) from error
    return processor, whisper.to(device).eval()


def _source(model: str) -> tuple[str, bool]:
    """(what to load, local only?) A folder loads offline; a hub id only when named and not a path."""
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path), True
    if path.exists() or model.startswith((".", "/", "~")) or model.count("/") != 1:
        raise EngineError(f"model: no transformers model folder at {model}; pass --model PATH or a hub id")
    return model, False  # a hub id: transformers honours HF_HUB_OFFLINE itself


def _vocabulary(tokenizer: Any, generation_config: Any) -> Vocabulary:
    begin = generation_config.no_timestamps_token_id + 1
    return Vocabulary(
        eot=generation_config.eos_token_id,
        timestamp_begin=begin,
        decode=lambda ids: tokenizer.decode(ids, skip_special_tokens=False),
    )


def _cut(samples: npt.NDArray[np.float32], span: Span) -> npt.NDArray[np.float32]:
    return samples[round(span.start * SAMPLE_RATE) : round(span.end * SAMPLE_RATE)]


def _transcript(decoded: Decoded, language: str | None, words: bool) -> Transcript:
    return transcript_of(decoded, language, keep_words=words)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
