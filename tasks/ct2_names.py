"""CTranslate2 Whisper variable names → transformers `WhisperForConditionalGeneration` names.

CTranslate2 fuses attention projections: self-attention `linear_0` is [q; k; v] and
cross-attention `linear_1` is [k; v]. transformers keeps them apart and has no key
bias (CTranslate2 stores zeros there), so the fused tensors are split and the key
bias dropped. The output projection is tied to the token embeddings.
"""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float32]
_NORM = {"gamma": "weight", "beta": "bias"}
_FFN = {"linear_0": "fc1", "linear_1": "fc2", "layer_norm": "final_layer_norm"}


def hf_state_dict(tensors: dict[str, Array]) -> dict[str, Array]:
    """The transformers state dict for a CTranslate2 Whisper model (without the tied `proj_out`)."""
    state: dict[str, Array] = {}
    for name, value in tensors.items():
        for key, tensor in _map(name, value):
            state[key] = tensor
    expected = {
        "model.encoder.conv1.weight",
        "model.decoder.embed_tokens.weight",
        "model.encoder.layer_norm.weight",
    }
    if not expected <= state.keys():
        raise ValueError(f"not a Whisper model: missing {sorted(expected - state.keys())}")
    return state


def _map(name: str, value: Array) -> list[tuple[str, Array]]:
    side, _, rest = name.partition("/")
    prefix = f"model.{side}"
    if rest.startswith(("conv1/", "conv2/")):
        return [(f"{prefix}.{rest.replace('/', '.')}", value)]
    if rest == "position_encodings/encodings":
        return [(f"{prefix}.embed_positions.weight", value)]
    if rest == "embeddings/weight":
        return [(f"{prefix}.embed_tokens.weight", value)]
    if rest == "projection/weight":
        return []  # alias of the embeddings: transformers ties proj_out to them
    if rest.startswith("layer_norm/"):
        return [(f"{prefix}.layer_norm.{_NORM[rest.split('/')[1]]}", value)]
    match = re.fullmatch(r"layer_(\d+)/(\w+)/(\w+)/(\w+)", rest)
    if match is None:
        raise ValueError(f"unexpected CTranslate2 Whisper variable {name}")
    layer, block, part, leaf = match.groups()
    return [(f"{prefix}.layers.{layer}.{key}", tensor) for key, tensor in _layer(block, part, leaf, value)]


def _layer(block: str, part: str, leaf: str, value: Array) -> list[tuple[str, Array]]:
    if part == "layer_norm":
        norm = {"self_attention": "self_attn_layer_norm", "attention": "encoder_attn_layer_norm"}
        return [(f"{norm.get(block, 'final_layer_norm')}.{_NORM[leaf]}", value)]
    if block == "ffn":
        return [(f"{_FFN[part]}.{leaf}", value)]
    attn = "self_attn" if block == "self_attention" else "encoder_attn"
    if block == "self_attention":
        names = {"linear_0": ("q_proj", "k_proj", "v_proj"), "linear_1": ("out_proj",)}[part]
    else:
        names = {"linear_0": ("q_proj",), "linear_1": ("k_proj", "v_proj"), "linear_2": ("out_proj",)}[part]
    pieces = np.split(value, len(names), axis=0)
    return [
        (f"{attn}.{proj}.{leaf}", piece)
        for proj, piece in zip(names, pieces, strict=True)
        if not (proj == "k_proj" and leaf == "bias")  # always zero in Whisper: transformers has none
    ]
