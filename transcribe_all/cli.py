"""`transcribe-all`: run the transcribe-library flow in this process, on this machine.

Exit codes: 0 every file ok or already done; 3 the run finished but some files
failed; 2 a usage error (one line naming the parameter); 1 the run itself failed.
Parameters are checked before Prefect starts, so a typo costs no server start.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE, EXIT_FILES_FAILED = 0, 1, 2, 3


class UsageError(Exception):
    """A user mistake: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="transcribe-all", description="Transcribe a whole media library.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = commands.add_parser("run", help="transcribe SOURCE into --out DIR on this machine")
    run.add_argument("source", metavar="SOURCE",
                     help="media folder (recursively scanned) or s3://BUCKET/PREFIX")
    run.add_argument("--out", required=True, metavar="DIR",
                     help="output folder or s3://BUCKET/PREFIX (manifest, transcripts, runs)")
    run.add_argument("--engine", default="ctranslate2", choices=["ctranslate2", "transformers", "nemo"])
    run.add_argument("--model", metavar="PATH_OR_ID", help="model folder/file or hub id (default: bundled)")
    run.add_argument("--hardware", default="cpu", metavar="PROFILE", help="pricing profile (default: cpu)")
    run.add_argument("--shards", type=_positive_int("--shards"), metavar="N", help="number of shards")
    run.add_argument("--shard-minutes", type=_positive_float("--shard-minutes"), metavar="M",
                     help="shards of about M minutes of audio (instead of --shards)")
    run.add_argument("--beam-size", type=_positive_int("--beam-size"), default=1, metavar="K")
    run.add_argument("--language", help="language code; default: the model's own or detected")
    run.add_argument("--word-timestamps", action="store_true", help="word timestamps in the JSON output")
    run.add_argument("--packing", action="store_true",
                     help="short clips share 30 s windows: faster on CPU, but a clip's text depends on its neighbours")
    run.add_argument("--base-url", metavar="URL",
                     help="where DIR is served (http(s)://HOST): manifest rows link to URL/outputs/...")
    run.add_argument("--no-vad", action="store_true", help="decode silence too (voice-activity detection off)")
    run.add_argument("--canary", default="shipped", metavar="FOLDER|off",
                     help="labelled set transcribed in every run (default: the shipped example clips)")
    run.add_argument("--canary-references", metavar="TSV", help="the set's references (default: FOLDER/references.tsv)")
    run.add_argument("--canary-threshold", type=_fraction("--canary-threshold"), default=None, metavar="WER",
                     help="fail the run when the canary's WER is above this (default: 0.35)")
    run.add_argument("-v", "--verbose", action="store_true", help="show Prefect's logs")
    models = commands.add_parser("models", help="manage local models")
    model_commands = models.add_subparsers(dest="models_command", required=True, parser_class=_Parser)
    convert = model_commands.add_parser("import-ct2", help="convert a CTranslate2 Whisper folder for transformers")
    convert.add_argument("src", metavar="SRC")
    convert.add_argument("dest", metavar="DEST")
    return parser


def _number(name: str, kind: type[int | float], minimum: float, inclusive: bool = True) -> argparse._ActionType:
    """An argparse type: a number of `kind` at least (or above) `minimum`, with a one-line error."""
    noun = "a whole number" if kind is int else "a number"

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {noun}, got {text!r}") from None
        if value < minimum or (not inclusive and value == minimum):
            bound = f"at least {minimum:g}" if inclusive else f"more than {minimum:g}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    parse.__name__ = name
    return parse


def _positive_int(name: str) -> argparse._ActionType:
    return _number(name, int, 1)


def _positive_float(name: str) -> argparse._ActionType:
    return _number(name, float, 0.0, inclusive=False)


def _fraction(name: str) -> argparse._ActionType:
    return _number(name, float, 0.0)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "models":
            return _import_ct2(args.src, args.dest)
        _check_run_args(args)
    except UsageError as error:
        print(f"transcribe-all: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    from transcribe_all.run import run_in_process

    return run_in_process(args)


def _check_run_args(args: argparse.Namespace) -> None:
    """Everything that can be checked without Prefect: one line naming the parameter."""
    from tasks.engines import EngineConfig, EngineError, resolve_model
    from tasks.output.links import check_base_url
    from tasks.planning.pricing import BUILTIN_PROFILES
    from transcribe_all.settings import external_prefect_api

    _check_location(args.source, "SOURCE")
    _check_location(args.out, "--out")
    try:
        check_base_url(args.base_url)
    except ValueError as error:
        raise UsageError(f"--{str(error).replace('_', '-', 1)}") from None
    if args.shards and args.shard_minutes:
        raise UsageError("--shards and --shard-minutes: give one or the other")
    if args.hardware not in BUILTIN_PROFILES and not external_prefect_api():
        raise UsageError(f"--hardware: unknown profile {args.hardware!r}; choose one of {', '.join(BUILTIN_PROFILES)}")
    try:
        resolve_model(EngineConfig(engine=args.engine, model=args.model, beam_size=args.beam_size))
    except (EngineError, ValueError) as error:
        raise UsageError(f"--{error}") from None


def _check_location(value: str, name: str) -> None:
    """A local folder (SOURCE must exist) or a well-formed s3:// URI with the aws extra installed."""
    if value.startswith("s3://"):
        from tasks.media.s3 import parse_s3_uri, require_aws

        try:
            parse_s3_uri(value, name)
            require_aws()
        except (ValueError, RuntimeError) as error:
            raise UsageError(str(error) if str(error).startswith(name) else f"{name}: {error}") from None
    elif "://" in value:
        raise UsageError(f"{name}: only folders and s3:// URIs are supported, got {value}")
    elif name == "SOURCE" and not Path(value).is_dir():
        raise UsageError(f"SOURCE: not a folder: {value}")
    elif Path(value).exists() and not Path(value).is_dir():
        raise UsageError(f"{name}: exists and is not a folder: {value}")


def _import_ct2(src: str, dest: str) -> int:
    try:
        from transcribe_all.convert_ct2 import import_ct2_command
    except ImportError:
        print("transcribe-all: error: models import-ct2 needs the whisper extra: pip install 'transcribe-all[whisper]'",
              file=sys.stderr)
        return EXIT_USAGE
    return import_ct2_command(src, dest)


if __name__ == "__main__":
    sys.exit(main())
