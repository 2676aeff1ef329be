"""Point the nightly deployment at a library and switch its schedule on (or off with --pause).

`prefect deploy --all` creates `transcribe-library/nightly` with its 02:00 UTC schedule
paused and no library, so nothing runs against a placeholder path. This sets the
deployment's parameters (checked by RunConfig first, one line per mistake) and resumes
its schedules:

    python deployments/nightly.py --source /data/media --out /data/transcripts --pool cpu [--shards 4]

Any other RunConfig field can be given as --param NAME=JSON (e.g. --param beam_size=5).
Running `prefect deploy` again resets the parameters and pauses the schedule: run this again after it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

NIGHTLY = "transcribe-library/nightly"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", help="the library, as the workers see it (folder, s3://, media-library/NAME)")
    parser.add_argument("--out", help="the output folder or s3:// prefix")
    parser.add_argument("--pool", help="the shard pool: cpu, h100 or g6")
    parser.add_argument("--shards", type=int, help="number of shards (default with a pool: ~60 min of audio each)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=JSON", help="any other RunConfig field")
    parser.add_argument("--pause", action="store_true", help="pause the schedule instead (parameters unchanged)")
    return parser.parse_args(argv)


def parameters(args: argparse.Namespace) -> dict[str, object]:
    """The deployment's new parameters, validated by RunConfig (the places are checked on the workers)."""
    from tasks.run_config import RunConfig

    given: dict[str, object] = {k: v for k in ("source", "out", "pool", "shards") if (v := getattr(args, k))}
    for pair in args.param:
        name, _, text = pair.partition("=")
        try:
            given[name] = json.loads(text)
        except json.JSONDecodeError:
            given[name] = text
    RunConfig.parse(given)  # raises ConfigError: one line naming the parameter
    return given


async def apply(args: argparse.Namespace) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentScheduleUpdate, DeploymentUpdate

    async with get_client() as client:
        deployment = await client.read_deployment_by_name(NIGHTLY)
        if not args.pause:
            await client.update_deployment(deployment.id, DeploymentUpdate(parameters=parameters(args)))
        for schedule in deployment.schedules:
            await client.update_deployment_schedule(deployment.id, schedule.id,
                                                    DeploymentScheduleUpdate(active=not args.pause))
        state = "paused" if args.pause else "active"
        return f"{NIGHTLY}: {len(deployment.schedules)} schedule(s) {state}"


def main(argv: list[str] | None = None) -> int:
    from prefect.exceptions import ObjectNotFound

    from tasks.run_config import ConfigError

    args = parse_args(argv)
    try:
        if not args.pause and not (args.source and args.out):
            raise ConfigError("--source and --out: both are needed to switch the nightly job on")
        print(asyncio.run(apply(args)))
    except ConfigError as error:
        print(f"nightly: error: {error}", file=sys.stderr)
        return 2
    except ObjectNotFound:
        print(f"nightly: error: no deployment {NIGHTLY}; run `prefect deploy --all` first", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
