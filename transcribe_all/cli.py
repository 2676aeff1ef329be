"""`transcribe-all`: run the transcribe-library flow in this process, on this machine.

Exit codes (transcribe_all/exit_codes.py): 0 every file ok or already done; 3 the run
finished but some files failed; 2 a usage error (one line naming the parameter); 1 the
run itself failed; 130 stopped by Ctrl-C (what was done is kept; transcribe_all/interrupt.py).
`run`'s options are generated from `RunConfig` (tasks/run_config.py),
the same fields a deployment run takes, and the whole configuration — including the
engine's extra, the model and the canary set — is checked before Prefect starts, so a
mistake costs no server start.
"""

from __future__ import annotations

import argparse
import sys
import time
import types
import typing
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any, NoReturn

from tasks.settings import prepare_cli_prefect_env, worker_settings
from transcribe_all.archive_cli import add_archive_commands, leading_dash_hint, run_archive_command
from transcribe_all.exit_codes import EXIT_USAGE

ARCHIVE_COMMANDS = ("search", "site")

# CLI spellings that differ from the field's name (kept from earlier releases).
FLAG_ALIASES = {"pack_short_clips": ("--packing",), "wait_for_lease": ("--wait",)}
METAVARS = {"model": "PATH_OR_ID", "shards": "N", "shard_minutes": "M", "beam_size": "K", "hardware": "PROFILE",
            "base_url": "URL", "canary": "FOLDER|off", "canary_references": "TSV", "canary_threshold": "WER",
            "language": "CODE", "pool": "POOL", "batch_size": "N", "shard_attempts": "N",
            "media_base_url": "URL"}


class UsageError(Exception):
    """A user mistake: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="transcribe-all", description="Transcribe a whole media library.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    run = commands.add_parser("run", help="transcribe SOURCE into --out DIR on this machine",
                              description="Transcribe every new or changed file under SOURCE into DIR.")
    add_run_config_arguments(run)
    run.add_argument("-v", "--verbose", action="store_true", help="show Prefect's logs")
    models = commands.add_parser("models", help="manage local models")
    model_commands = models.add_subparsers(dest="models_command", metavar="COMMAND", required=True,
                                           parser_class=_Parser)
    convert = model_commands.add_parser("import-ct2", help="convert a CTranslate2 Whisper folder for transformers")
    convert.add_argument("src", metavar="SRC", help="a CTranslate2 Whisper folder (model.bin, config.json...)")
    convert.add_argument("dest", metavar="DEST", help="where to write the transformers model")
    add_archive_commands(commands)  # search, site: transcribe_all/archive_cli.py
    return parser


def add_run_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per RunConfig field; only the options given reach RunConfig, so its defaults rule."""
    from tasks.run_config import RunConfig

    for name, field in RunConfig.model_fields.items():
        help_text = (field.description or "").replace("%", "%%")
        if name == "source":
            parser.add_argument("source", metavar="SOURCE", help=help_text)
            continue
        flags = [f"--{name.replace('_', '-')}", *FLAG_ALIASES.get(name, ())]
        kind, choices = _kind(field.annotation)
        common: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS}
        if name == "out":
            parser.add_argument(*flags, metavar="DIR", required=True, help=help_text, dest=name)
        elif kind is bool:
            default = "on" if field.default else "off"
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, help=f"{help_text} (default: {default})",
                                **common)
        elif kind is dict:
            parser.add_argument("--engine-option", metavar="KEY=VALUE", action="append", type=_key_value,
                                help=f"{help_text} Repeat for several.", **common)
        else:
            default = field.get_default(call_default_factory=True)
            shown = f" (default: {default})" if default is not None else ""
            parser.add_argument(*flags, choices=choices, metavar=METAVARS.get(name), help=f"{help_text}{shown}",
                                **common)


def _kind(annotation: Any) -> tuple[type, list[str] | None]:
    """bool, dict or str (validated by RunConfig), and the choices of a Literal."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)] \
        if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union else [annotation]
    first = args[0]
    if typing.get_origin(first) is typing.Literal:
        return str, [str(choice) for choice in typing.get_args(first)]
    if first is bool:
        return bool, None
    if typing.get_origin(first) is dict:
        return dict, None
    return str, None


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def _version() -> str:
    try:
        return version("transcribe-all")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    started = time.monotonic()  # the command's own time, shown beside the flow's in the summary
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        try:
            args = parser.parse_args(argv)
        except UsageError as error:
            raise UsageError(leading_dash_hint(argv, str(error))) from None
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        if args.command == "models":
            return _import_ct2(args.src, args.dest)
        if args.command in ARCHIVE_COMMANDS:
            return run_archive_command(args)
        # Before anything can import Prefect: it reads its settings (state folder, log level) once, at import.
        prepare_cli_prefect_env(worker_settings(), args.verbose)
        config = check_run_args(args)
    except UsageError as error:
        print(f"transcribe-all: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    from transcribe_all.run import run_in_process

    return run_in_process(config, started)


def check_run_args(args: argparse.Namespace) -> Any:
    """Everything that can be checked without Prefect; a RunConfig, or one line naming the option."""
    from tasks.engines import EngineError, check_engine
    from tasks.planning.pricing import BUILTIN_PROFILES
    from tasks.quality.canary_set import CanarySetError, resolve_canary
    from tasks.run_config import ConfigError, RunConfig
    from tasks.settings import external_prefect_api

    given = {k: v for k, v in vars(args).items() if k not in ("command", "verbose")}
    if "engine_options" in given:
        given["engine_options"] = dict(given["engine_options"])
    try:
        config = RunConfig.parse(given)
        config.check_places()
        check_engine(config.engine_config())
        resolve_canary(config.canary, config.canary_references, config.engine)
    except (ConfigError, EngineError, CanarySetError) as error:
        raise UsageError(_as_flag(str(error))) from None
    if config.hardware_profile() not in BUILTIN_PROFILES and not external_prefect_api():
        choices = ", ".join(BUILTIN_PROFILES)
        raise UsageError(f"--hardware: unknown profile {config.hardware!r}; choose one of {choices}")
    return config


def _as_flag(message: str) -> str:
    """`shard_minutes: ...` → `--shard-minutes: ...`: the parameters named before the colon, as typed."""
    import re

    from tasks.run_config import RunConfig

    names, sep, rest = message.partition(":")
    if not sep:
        return message

    def flag(match: re.Match[str]) -> str:
        name = match.group(0)
        if name not in RunConfig.model_fields:
            return name
        if name == "source":
            return "SOURCE"
        return "--engine-option" if name == "engine_options" else f"--{name.replace('_', '-')}"

    return re.sub(r"[a-z_]+", flag, names) + sep + rest


def _import_ct2(src: str, dest: str) -> int:
    try:
        from tasks.convert_ct2 import import_ct2_command
    except ImportError:
        print("transcribe-all: error: models import-ct2 needs the whisper extra: pip install 'transcribe-all[whisper]'",
              file=sys.stderr)
        return EXIT_USAGE
    return import_ct2_command(src, dest)


if __name__ == "__main__":
    sys.exit(main())
