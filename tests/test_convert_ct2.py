"""CTranslate2 → transformers conversion of the bundled tiny.en, and the one-time model cache."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tasks import convert_ct2, models
from tasks.convert_ct2 import ConversionError, convert_ct2_whisper, import_ct2_command, is_complete
from tasks.models import bundled_whisper_ct2
from tests.hf_tiny import converted_tiny


@pytest.mark.slow
def test_config_and_generation_config_describe_tiny_en() -> None:
    folder = converted_tiny()
    config = json.loads((folder / "config.json").read_text())
    assert (config["d_model"], config["encoder_layers"], config["decoder_layers"]) == (384, 4, 4)
    assert (config["encoder_attention_heads"], config["num_mel_bins"], config["vocab_size"]) == (6, 80, 51864)
    generation = json.loads((folder / "generation_config.json").read_text())
    ct2 = json.loads((bundled_whisper_ct2() / "config.json").read_text())
    assert generation["decoder_start_token_id"] == 50257
    assert generation["eos_token_id"] == generation["pad_token_id"] == 50256
    assert generation["no_timestamps_token_id"] == 50362
    assert generation["is_multilingual"] is False
    assert generation["alignment_heads"] == ct2["alignment_heads"]
    assert generation["suppress_tokens"] == ct2["suppress_ids"]
    assert generation["begin_suppress_tokens"] == ct2["suppress_ids_begin"]
    assert is_complete(folder)


@pytest.mark.slow
def test_tokenizer_knows_special_and_timestamp_tokens() -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(converted_tiny())
    assert len(tokenizer) == 51864
    assert tokenizer.all_special_ids[-1] == 50362  # Whisper finds the first timestamp right after it
    assert tokenizer.convert_tokens_to_ids(["<|0.00|>", "<|30.00|>"]) == [50363, 51863]
    ids = [50257, 50363, 383, 2068, 7586, 21831, 13, 50463, 50256]
    decoded = tokenizer.decode(ids, output_offsets=True)
    assert decoded["offsets"] == [{"text": " The quick brown fox.", "timestamp": (0.0, 2.0)}]
    assert tokenizer.decode(ids, skip_special_tokens=True) == " The quick brown fox."


@pytest.mark.slow
def test_weights_split_fused_projections_and_load_without_gaps() -> None:
    from safetensors.numpy import load_file
    from transformers import WhisperForConditionalGeneration

    state = load_file(str(converted_tiny() / "model.safetensors"))
    tensors, _ = convert_ct2.read_ct2_model(bundled_whisper_ct2() / "model.bin")
    fused = tensors["decoder/layer_2/self_attention/linear_0/weight"]
    np.testing.assert_array_equal(state["model.decoder.layers.2.self_attn.k_proj.weight"], fused[384:768])
    np.testing.assert_array_equal(state["model.decoder.layers.2.self_attn.v_proj.weight"], fused[768:])
    cross = tensors["decoder/layer_1/attention/linear_1/weight"]
    np.testing.assert_array_equal(state["model.decoder.layers.1.encoder_attn.v_proj.weight"], cross[384:])
    assert not [key for key in state if key.endswith("k_proj.bias")]
    model, info = WhisperForConditionalGeneration.from_pretrained(converted_tiny(), output_loading_info=True)
    assert info["missing_keys"] == set() or not info["missing_keys"]
    assert not info["unexpected_keys"]
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()


def test_missing_source_gives_one_line_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-model"
    assert import_ct2_command(str(missing), str(tmp_path / "out")) == 2
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and str(missing) in out
    assert not (tmp_path / "out").exists()


def test_existing_destination_is_refused(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(ConversionError, match="already exists"):
        convert_ct2_whisper(bundled_whisper_ct2(), tmp_path / "taken")


def test_failed_conversion_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def half_written(src: Path, out: Path) -> None:
        (out / "config.json").write_text("{}")
        raise OSError("disk full")

    monkeypatch.setattr(convert_ct2, "_write_model", half_written)
    with pytest.raises(OSError, match="disk full"):
        convert_ct2_whisper(bundled_whisper_ct2(), tmp_path / "model")
    assert list(tmp_path.iterdir()) == []


def _fake_settings(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    from tasks import settings

    monkeypatch.setattr(settings, "worker_settings", lambda: settings.WorkerSettings(cache_dir=cache))


def test_bundled_model_is_converted_once_under_concurrency(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []

    def slow_convert(src: Path, dest: Path) -> Path:
        calls.append(dest)
        time.sleep(0.3)  # long enough that every thread arrives while the first converts
        dest.mkdir()
        for name in convert_ct2.HF_FILES:
            (dest / name).write_text("x")
        return dest

    _fake_settings(monkeypatch, tmp_path)
    monkeypatch.setattr(convert_ct2, "convert_ct2_whisper", slow_convert)
    found: list[Path] = []
    threads = [
        threading.Thread(target=lambda: found.append(models.bundled_whisper_transformers())) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert found == [tmp_path / "models" / "whisper-tiny.en-hf"] * 4


def test_incomplete_cached_folder_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_settings(monkeypatch, tmp_path)
    (tmp_path / "models" / "whisper-tiny.en-hf").mkdir(parents=True)
    with pytest.raises(RuntimeError, match="delete that folder"):
        models.bundled_whisper_transformers()
