"""Turn a CTranslate2 Whisper folder into a transformers folder, offline.

Why: the only real Whisper weights that install without a hub are CTranslate2
folders (the bundled tiny.en). The transformers engine needs the same weights as
`model.safetensors` plus configs and a tokenizer that knows its special and
timestamp tokens. `model.bin` is read directly (format in ../shared/NOTES.md), so
conversion needs numpy and safetensors, and transformers only to write configs.

The result is written into a temporary sibling folder and renamed into place, so
a reader never sees half a model and two converters never mix their files.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import tempfile
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from tasks.ct2_names import hf_state_dict

Array = npt.NDArray[np.float32]
CT2_FILES = ("model.bin", "config.json", "vocabulary.txt", "tokenizer.json")
HF_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "preprocessor_config.json",
    "tokenizer.json",
)
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}  # 5 (bf16) handled apart


class ConversionError(ValueError):
    """The source is not a CTranslate2 Whisper folder, or the destination is taken."""


def convert_ct2_whisper(src: Path, dest: Path) -> Path:
    """Convert `src` (CTranslate2 Whisper) into a new transformers folder at `dest`."""
    src, dest = Path(src), Path(dest)
    missing = [name for name in CT2_FILES if not (src / name).is_file()]
    if missing:
        raise ConversionError(f"{src}: not a CTranslate2 Whisper folder (missing {', '.join(missing)})")
    if dest.exists():
        raise ConversionError(f"{dest}: already exists; remove it or choose another destination")
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        _write_model(src, work)
        work.chmod(0o755)  # mkdtemp makes it private; a model cache is shared by the workers
        work.rename(dest)  # atomic on one filesystem; fails if another converter won
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return dest


def is_complete(folder: Path) -> bool:
    """True when `folder` holds every file a converted model needs."""
    return all((folder / name).is_file() for name in HF_FILES)


def import_ct2_command(src: str, dest: str) -> int:
    """`transcribe-all models import-ct2 SRC DEST`: one line out, an exit code back."""
    try:
        out = convert_ct2_whisper(Path(src), Path(dest))
    except (ConversionError, OSError) as error:
        print(f"import-ct2: {error}")
        return 2
    print(f"import-ct2: wrote transformers Whisper model to {out}")
    return 0


def _write_model(src: Path, out: Path) -> None:
    tensors, scalars = read_ct2_model(src / "model.bin")
    vocabulary = (src / "vocabulary.txt").read_text(encoding="utf-8").splitlines()
    ct2_config = json.loads((src / "config.json").read_text(encoding="utf-8"))
    ids = _token_ids(vocabulary)
    from safetensors.numpy import save_file

    state = hf_state_dict(tensors)
    save_file(
        {k: np.ascontiguousarray(v) for k, v in state.items()},
        str(out / "model.safetensors"),
        metadata={"format": "pt"},
    )
    (out / "model.safetensors").chmod(0o644)
    _write_configs(out, tensors, scalars, ids, ct2_config, vocabulary)
    _write_tokenizer(src, out, vocabulary, ids)


def read_ct2_model(path: Path) -> tuple[dict[str, Array], dict[str, int]]:
    """All float variables of a CTranslate2 `model.bin` (upcast to float32) and its integer scalars."""
    tensors: dict[str, Array] = {}
    scalars: dict[str, int] = {}
    with path.open("rb") as handle:
        version = _u32(handle)
        if version < 5:
            raise ConversionError(f"{path}: CTranslate2 model version {version} is too old (need 5 or later)")
        spec = _string(handle)
        if not spec.startswith("Whisper"):
            raise ConversionError(f"{path}: holds a {spec}, not a Whisper model")
        _u32(handle)  # spec revision
        for _ in range(_u32(handle)):
            name, value = _variable(handle)
            if value.ndim == 0:
                scalars[name] = int(value)
            else:
                tensors[name] = value.astype(np.float32)
        for _ in range(_u32(handle)):
            alias, target = _string(handle), _string(handle)
            tensors[alias] = tensors[target]
    return tensors, scalars


def _variable(handle: BinaryIO) -> tuple[str, npt.NDArray[np.generic]]:
    name = _string(handle)
    rank = handle.read(1)[0]
    shape = tuple(_u32(handle) for _ in range(rank))
    dtype_id = handle.read(1)[0]
    raw = handle.read(_u32(handle))
    if dtype_id == 5:  # bfloat16: the high half of a float32
        data = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
    elif dtype_id in _DTYPES:
        data = np.frombuffer(raw, dtype=_DTYPES[dtype_id])
    else:
        raise ConversionError(f"variable {name}: unknown CTranslate2 dtype id {dtype_id}")
    return name, data.reshape(shape)


def _u32(handle: BinaryIO) -> int:
    return int(struct.unpack("<I", handle.read(4))[0])


def _string(handle: BinaryIO) -> str:
    (length,) = struct.unpack("<H", handle.read(2))
    return handle.read(length).rstrip(b"\0").decode("utf-8")


def _token_ids(vocabulary: list[str]) -> dict[str, int]:
    index = {token: i for i, token in enumerate(vocabulary)}
    names = (
        "endoftext",
        "startoftranscript",
        "translate",
        "transcribe",
        "startoflm",
        "startofprev",
        "nocaptions",
        "notimestamps",
    )
    try:
        return {name: index[f"<|{name}|>"] for name in names}
    except KeyError as error:
        raise ConversionError(f"vocabulary.txt lacks the Whisper special token {error}") from error


def _layers(tensors: dict[str, Array], side: str) -> int:
    found = {int(m.group(1)) for name in tensors if (m := re.match(rf"{side}/layer_(\d+)/", name))}
    return max(found) + 1


def _write_configs(
    out: Path,
    tensors: dict[str, Array],
    scalars: dict[str, int],
    ids: dict[str, int],
    ct2: dict[str, list[int]],
    vocabulary: list[str],
) -> None:
    from transformers import WhisperConfig, WhisperFeatureExtractor

    vocab_size = len(vocabulary)
    d_model, n_mels, _ = tensors["encoder/conv1/weight"].shape
    eot, sot = ids["endoftext"], ids["startoftranscript"]
    # suppress lists live in the generation config only: in both, generate() warns on every call
    common = {"decoder_start_token_id": sot, "eos_token_id": eot, "pad_token_id": eot, "bos_token_id": eot}
    WhisperConfig(
        vocab_size=vocab_size,
        num_mel_bins=int(n_mels),
        d_model=int(d_model),
        encoder_layers=_layers(tensors, "encoder"),
        decoder_layers=_layers(tensors, "decoder"),
        encoder_attention_heads=scalars["encoder/num_heads"],
        decoder_attention_heads=scalars["decoder/num_heads"],
        encoder_ffn_dim=int(tensors["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        decoder_ffn_dim=int(tensors["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        max_source_positions=int(tensors["encoder/position_encodings/encodings"].shape[0]),
        max_target_positions=int(tensors["decoder/position_encodings/encodings"].shape[0]),
        tie_word_embeddings=True,
        begin_suppress_tokens=None,
        **common,
    ).save_pretrained(out)
    max_length = int(tensors["decoder/position_encodings/encodings"].shape[0])
    _write_generation_config(out, common, ids, ct2, vocabulary, max_length)
    WhisperFeatureExtractor(
        feature_size=int(n_mels), sampling_rate=16_000, hop_length=160, chunk_length=30, n_fft=400
    ).save_pretrained(out)


def _write_generation_config(
    out: Path,
    common: dict[str, int],
    ids: dict[str, int],
    ct2: dict[str, list[int]],
    vocabulary: list[str],
    max_length: int,
) -> None:
    """Decoding rules as CTranslate2 applies them: suppress lists, alignment heads, first timestamp ≤ 1 s."""
    from transformers import GenerationConfig

    multilingual = len(vocabulary) >= 51865  # the rule openai/whisper uses
    generation = GenerationConfig(
        **common,
        max_length=max_length,
        no_timestamps_token_id=ids["notimestamps"],
        prev_sot_token_id=ids["startofprev"],
        is_multilingual=multilingual,
        alignment_heads=ct2["alignment_heads"],
        max_initial_timestamp_index=50,
        return_timestamps=False,
        begin_suppress_tokens=ct2["suppress_ids_begin"],
        suppress_tokens=ct2["suppress_ids"],
    )
    if multilingual:
        generation.task_to_id = {"transcribe": ids["transcribe"], "translate": ids["translate"]}
        languages = range(ids["startoftranscript"] + 1, ids["translate"])
        generation.lang_to_id = {vocabulary[i]: i for i in languages}
    generation.save_pretrained(out)


def _write_tokenizer(src: Path, out: Path, vocabulary: list[str], ids: dict[str, int]) -> None:
    """tokenizer.json with every `<|...|>` token registered: specials first, then timestamps.

    The Whisper tokenizer finds the first timestamp as `all_special_ids[-1] + 1`, so
    `<|notimestamps|>` must be the last special token and the timestamps plain added tokens.
    """
    from transformers import WhisperProcessor

    data = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    first, last_special = ids["endoftext"], ids["notimestamps"]
    data["added_tokens"] = [
        {
            "id": i,
            "content": vocabulary[i],
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": i <= last_special,
        }
        for i in range(first, len(vocabulary))
    ]
    (out / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    eot = vocabulary[first]
    specials = [vocabulary[i] for i in range(first + 1, last_special + 1)]
    tokenizer_config = {
        "tokenizer_class": "WhisperTokenizer",
        "bos_token": eot,
        "eos_token": eot,
        "unk_token": eot,
        "pad_token": eot,
        "extra_special_tokens": specials,
        "model_max_length": 1024,
        "errors": "replace",
        "add_prefix_space": False,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2), encoding="utf-8")
    WhisperProcessor.from_pretrained(str(out)).save_pretrained(str(out))
