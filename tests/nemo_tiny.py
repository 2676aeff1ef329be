"""Build FastConformer-TDT models from an inline config, for tests and the long-form benchmark.

NeMo's wheel ships no YAML configs and no weights can be downloaded here, so the model is
described below (the Parakeet-TDT recipe without its CTC head) and its tokenizer is a
sentencepiece BPE trained on a few sentences. Weights are random: outputs are garbage
words with real structure (tokens, durations, timestamps), which is what the tests check.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

SENTENCES = (
    "the quick brown fox jumps over the lazy dog",
    "a journey of a thousand miles begins with a single step",
    "speech recognition turns audio into text with timestamps",
    "every file in the archive gets a transcript and a manifest row",
    "long recordings are cut into chunks with left and right context",
    "she sells sea shells by the sea shore on sunny mornings",
)
TDT_DURATIONS = [0, 1, 2, 3, 4]


@dataclass(frozen=True, slots=True)
class Geometry:
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    feat_in: int = 80
    pred_hidden: int = 64
    joint_hidden: int = 64
    vocab_size: int = 64
    subsampling_conv_channels: int = 64


TINY = Geometry()
# Parakeet-TDT-0.6B-v3: 24 x 1024 FastConformer, 8 heads, 128 mels, 640-wide prediction and joint nets.
PARAKEET_0_6B = Geometry(
    d_model=1024, n_layers=24, n_heads=8, feat_in=128, pred_hidden=640, joint_hidden=640,
    vocab_size=1024, subsampling_conv_channels=256,
)


def train_tokenizer(folder: Path, vocab_size: int) -> Path:
    """A sentencepiece BPE model in the layout NeMo's `tokenizer: {dir, type: bpe}` expects."""
    import sentencepiece as spm

    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "corpus.txt"
    # repeat and shuffle words so BPE has enough distinct pieces for larger vocabularies
    lines = list(SENTENCES) + [" ".join(reversed(s.split())) for s in SENTENCES]
    corpus.write_text("\n".join(lines * 4) + "\n")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(folder / "tokenizer"), vocab_size=vocab_size,
        model_type="bpe", character_coverage=1.0, hard_vocab_limit=False, bos_id=-1, eos_id=-1,
        minloglevel=2,
    )
    (folder / "vocab.txt").write_text(
        "\n".join(line.split("\t")[0] for line in (folder / "tokenizer.vocab").read_text().splitlines()) + "\n"
    )
    return folder


def tdt_config(tokenizer_dir: Path, geometry: Geometry) -> dict[str, Any]:
    g = geometry
    return {
        "sample_rate": 16000,
        "model_defaults": {"enc_hidden": g.d_model, "pred_hidden": g.pred_hidden,
                           "joint_hidden": g.joint_hidden, "tdt_durations": TDT_DURATIONS,
                           "num_tdt_durations": len(TDT_DURATIONS)},
        "tokenizer": {"dir": str(tokenizer_dir), "type": "bpe"},
        "preprocessor": {
            "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
            "sample_rate": 16000, "normalize": "per_feature", "window_size": 0.025, "window_stride": 0.01,
            "window": "hann", "features": g.feat_in, "n_fft": 512, "log": True, "frame_splicing": 1,
            "dither": 0.0, "pad_to": 0, "pad_value": 0.0,
        },
        "encoder": {
            "_target_": "nemo.collections.asr.modules.ConformerEncoder",
            "feat_in": g.feat_in, "feat_out": -1, "n_layers": g.n_layers, "d_model": g.d_model,
            "use_bias": False, "subsampling": "dw_striding", "subsampling_factor": 8,
            "subsampling_conv_channels": g.subsampling_conv_channels, "causal_downsampling": False,
            "ff_expansion_factor": 4, "self_attention_model": "rel_pos", "n_heads": g.n_heads,
            "att_context_size": [-1, -1], "att_context_style": "regular", "xscaling": True,
            "untie_biases": True, "pos_emb_max_len": 5000, "conv_kernel_size": 9,
            "conv_norm_type": "batch_norm", "conv_context_size": None, "dropout": 0.1,
            "dropout_pre_encoder": 0.1, "dropout_emb": 0.0, "dropout_att": 0.1,
        },
        "decoder": {
            "_target_": "nemo.collections.asr.modules.RNNTDecoder", "normalization_mode": None,
            "random_state_sampling": False, "blank_as_pad": True,
            "prednet": {"pred_hidden": g.pred_hidden, "pred_rnn_layers": 2, "t_max": None, "dropout": 0.2},
        },
        "joint": {
            "_target_": "nemo.collections.asr.modules.RNNTJoint", "log_softmax": None,
            "preserve_memory": False, "fuse_loss_wer": False, "fused_batch_size": 4,
            "num_extra_outputs": len(TDT_DURATIONS),
            "jointnet": {"joint_hidden": g.joint_hidden, "activation": "relu", "dropout": 0.2},
        },
        "decoding": {
            "strategy": "greedy_batch", "model_type": "tdt", "durations": TDT_DURATIONS,
            "greedy": {"max_symbols": 10},
        },
        "loss": {
            "loss_name": "tdt",
            "tdt_kwargs": {"fastemit_lambda": 0.0, "clamp": -1.0, "durations": TDT_DURATIONS,
                           "sigma": 0.02, "omega": 0.1},
        },
        # transcribe() reads this section; without it: "Key 'validation_ds' is not in struct"
        "validation_ds": {"manifest_filepath": None, "sample_rate": 16000, "batch_size": 4, "shuffle": False},
        "optim": None,
    }


def build_tdt_model(folder: Path, geometry: Geometry = TINY, seed: int = 0) -> Any:
    """An EncDecRNNTBPEModel with TDT decoding and random (seeded) weights, in eval mode."""
    import torch
    from nemo.collections.asr.models import EncDecRNNTBPEModel
    from omegaconf import OmegaConf

    torch.manual_seed(seed)
    tokenizer_dir = train_tokenizer(folder / "tokenizer", geometry.vocab_size)
    model = EncDecRNNTBPEModel(cfg=OmegaConf.create(tdt_config(tokenizer_dir, geometry)))
    shape_output_bias(model, seed)
    return model.eval()


def shape_output_bias(model: Any, seed: int = 0) -> None:
    """Make random weights emit words at a speech-like rate.

    Untouched, the random joint emits up to `max_symbols` tokens per frame with
    duration 0: one long non-word per file and a slow decode. Forbidding duration 0
    and favouring word-initial pieces gives many short words that advance in time,
    so timestamps, segments and chunk stitching have something to act on.
    """
    import torch

    layer = model.joint.joint_net[-1]
    vocab = model.tokenizer.vocab
    blank = len(vocab)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        layer.bias.copy_(torch.rand(layer.bias.shape, generator=generator))
        for index, piece in enumerate(vocab):
            if piece.startswith("\u2581"):
                layer.bias[index] += 1.0
        layer.bias[blank] = 1.0
        layer.bias[blank + 1] = -8.0  # duration 0: never stay on a frame


def save_tiny_nemo(folder: Path, geometry: Geometry = TINY, seed: int = 0) -> Path:
    """Build, save as `.nemo` and return its path: the engine loads it through `restore_from`."""
    model = build_tdt_model(folder, geometry, seed)
    path = folder / "tiny-tdt.nemo"
    model.save_to(str(path))
    return path
