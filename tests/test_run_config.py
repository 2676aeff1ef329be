"""One typed run configuration: what users pass is what runs, and mistakes are one line before any work."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks.engines.identity import config_hash
from tasks.engines.options import CTranslate2Options, engine_options, text_options
from tasks.run_config import ConfigError, RunConfig

ROOT = Path(__file__).resolve().parent.parent
BASE = {"source": str(ROOT / "examples" / "library"), "out": "/tmp/never-written"}


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"shards": 2, "shard_minutes": 60}, "shards and shard_minutes: give one or the other"),
        ({"engine_options": {"bogus_knob": "1"}},
         ("engine_options: unknown option 'bogus_knob' for the ctranslate2 engine; valid: audio_context, long_form, "
         "quality_retry, vad, vad_threshold")),
        ({"engine_options": {"long_form": "fast"}}, "engine_options: long_form: Input should be 'batched' or"),
        ({"shards": 0}, "shards: Input should be greater than or equal to 1"),
        ({"bogus": 1}, "bogus: unknown parameter; valid: source, out,"),
        ({"engine": "whisperx"}, "engine: Input should be"),
        ({"pool": "tpu"}, "hardware: pool 'tpu' has no default price profile; pass hardware"),
        ({"out": "gs://bucket/x"}, "out: gs:// is not supported"),
    ],
)
def test_mistakes_are_one_line_naming_the_parameter(given: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RunConfig.parse(BASE | given)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_what_the_user_passes_is_what_runs() -> None:
    flat = RunConfig.parse(BASE | {"pool": "cpu", "shards": 2})
    assert flat.shard_plan() == (2, None)
    assert flat.hardware_profile() == "cpu"  # the pool's, not a deployment default
    assert RunConfig.parse(BASE | {"pool": "h100"}).hardware_profile() == "h100"
    assert RunConfig.parse(BASE | {"pool": "g6"}).hardware_profile() == "g6.xlarge"
    assert RunConfig.parse(BASE | {"pool": "g6", "hardware": "g6.2xlarge"}).hardware_profile() == "g6.2xlarge"
    assert RunConfig.parse(BASE).shard_plan() == (1, None)  # in-process: one shard
    assert RunConfig.parse(BASE | {"pool": "cpu"}).shard_plan() == (None, 3600.0)  # a pool: ~1 h shards


def test_engine_options_are_typed_and_the_hash_covers_their_resolved_values() -> None:
    config = RunConfig.parse(BASE | {"engine_options": {"long_form": "sequential"}, "vad": False}).engine_config()
    assert config.extra == (("long_form", "sequential"), ("vad", "off"))
    options = engine_options(config, CTranslate2Options)
    assert (options.long_form, options.vad, options.quality_retry) == ("sequential", False, True)

    def key(**given: object) -> str:
        return config_hash(RunConfig.parse(BASE | {"engine_options": given}).engine_config(), "tiny.en")

    # a row's key says what produced it: the default is hashed by its value, so naming it changes nothing,
    # and a changed default (audio_context was fit) makes a new key
    assert text_options(RunConfig.parse(BASE).engine_config())["audio_context"] == "full"
    assert key() == key(audio_context="full") == key(vad_threshold=0.5) == key(vad_threshold="0.50")
    assert len({key(), key(audio_context="fit"), key(long_form="sequential"), key(quality_retry=False)}) == 4
    fake = {"engine": "fake"}  # an option that cannot change the text stays out of the key
    assert (config_hash(RunConfig.parse(BASE | fake).engine_config(), "fake")
            == config_hash(RunConfig.parse(BASE | fake | {"engine_options": {"seconds_per_audio_second": 0.1}})
                           .engine_config(), "fake"))


def test_a_missing_source_is_one_line_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"^source: not a folder: {tmp_path / 'gone'}$"):
        RunConfig.parse(BASE | {"source": str(tmp_path / "gone")}).check_places()


@pytest.mark.slow
def test_a_contradiction_fails_the_flow_run_at_once_with_the_line(prefect_api: str) -> None:
    from flows.transcribe_library import transcribe_library

    started = time.monotonic()
    state = transcribe_library(**BASE, shards=2, shard_minutes=5, return_state=True)
    assert state.is_failed() and time.monotonic() - started < 30
    assert "shards and shard_minutes: give one or the other" in str(state.message)


@pytest.mark.slow
def test_flat_parameters_run_as_given(prefect_api: str, tmp_path: Path) -> None:
    """The form users pass to `prefect deployment run`: two shards, priced as the machine it ran on."""
    import pandas as pd

    from flows.transcribe_library import transcribe_library

    out = tmp_path / "out"
    metrics = transcribe_library(source=BASE["source"], out=str(out), engine="fake", shards=2)
    assert (metrics.files_ok, metrics.hardware, metrics.workers) == (6, "cpu", 1)
    assert metrics.cost_usd == pytest.approx(metrics.wall_s / 3600 * metrics.price_per_hour_usd)  # this machine
    assert len(list((out / "_plans").rglob("shard-*.parquet"))) == 2
    assert pd.read_parquet(out / "runs")["canary_wer"].isna().all()  # the fake engine has no canary


def cli(*args: str, before: str = "") -> subprocess.CompletedProcess[str]:
    """The CLI in a fresh interpreter; afterwards, whether Prefect was ever imported."""
    code = (f"import sys\n{before}\nfrom transcribe_all.cli import main\ncode = main({list(args)!r})\n"
            "print('prefect imported' if 'prefect' in sys.modules else 'prefect not imported', file=sys.stderr)\n"
            "sys.exit(code)")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=False)


def test_a_missing_extra_exits_2_before_prefect_starts(tmp_path: Path) -> None:
    done = cli("run", "examples/library", "--out", str(tmp_path / "out"), "--engine", "transformers",
               before="sys.modules['safetensors'] = None  # as if the whisper extra were not installed")
    assert done.returncode == 2, done.stderr
    first, last = done.stderr.splitlines()
    assert first == ("transcribe-all: error: --engine: transformers needs safetensors, not installed here: "
                     "pip install 'transcribe-all[whisper]'")
    assert last == "prefect not imported"


def test_a_bad_canary_path_and_a_bogus_option_exit_2_before_prefect_starts(tmp_path: Path) -> None:
    done = cli("run", "examples/library", "--out", str(tmp_path / "out"), "--canary", str(tmp_path / "nope"))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [(f"transcribe-all: error: --canary: not a folder: {tmp_path / 'nope'}; pass "
                                        "a folder of labelled audio, or canary=off"), "prefect not imported"]
    bogus = cli("run", "examples/library", "--out", str(tmp_path / "out"), "--engine-option", "bogus_knob=1")
    assert bogus.returncode == 2 and bogus.stderr.startswith("transcribe-all: error: --engine-option: unknown option")


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["models", "--help"],
                                  ["models", "import-ct2", "--help"]])
def test_every_help_runs(argv: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "transcribe_all.cli", *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stdout.startswith("usage: transcribe-all"), done.stderr


def test_run_help_lists_every_run_config_field() -> None:
    done = subprocess.run([sys.executable, "-m", "transcribe_all.cli", "run", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    for name in RunConfig.model_fields:
        flag = {"source": "SOURCE", "engine_options": "--engine-option"}.get(name, f"--{name.replace('_', '-')}")
        assert flag in done.stdout, flag


def test_version_and_no_arguments() -> None:
    version = subprocess.run([sys.executable, "-m", "transcribe_all.cli", "--version"], capture_output=True,
                             text=True, timeout=60, check=False)
    assert version.returncode == 0 and version.stdout.startswith("transcribe-all ")
    bare = subprocess.run([sys.executable, "-m", "transcribe_all.cli"], capture_output=True, text=True, timeout=60,
                          check=False)
    assert bare.returncode == 2 and bare.stderr.startswith("usage: transcribe-all")
    assert "\n    run  " in bare.stderr and "\n    models  " in bare.stderr  # the subcommands, described


def test_the_flow_parameters_are_the_run_config_fields_with_descriptions() -> None:
    """What the Prefect UI renders as the run form, and what `--params` keys merge into."""
    from flows.transcribe_library import transcribe_library

    schema = transcribe_library.parameters.model_dump()
    assert list(schema["properties"]) == list(RunConfig.model_fields)
    assert schema["required"] == ["source", "out"]
    for name, field in RunConfig.model_fields.items():
        assert schema["properties"][name]["description"] == field.description
    assert schema["properties"]["shards"]["default"] is None and schema["properties"]["engine"]["enum"] == [
        "ctranslate2", "transformers", "nemo", "fake"]
