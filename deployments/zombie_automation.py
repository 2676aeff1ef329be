"""Create the automation that marks silent flow runs `Crashed` (Prefect's zombie detection).

A worker that dies with its machine (a spot reclaim, a SIGKILL) leaves its flow run
`Running` for ever. Runs started by a worker emit a heartbeat every
PREFECT_FLOWS_HEARTBEAT_FREQUENCY seconds (prefect.yaml sets 30 on the GPU pools);
this automation crashes a run whose heartbeat stops, and the parent flow then
resubmits its shard. See https://docs.prefect.io/v3/advanced/detect-zombie-flows

    python deployments/zombie_automation.py [--within SECONDS]

`--within` must exceed the heartbeat interval and the slowest start of a run (an ECS
task pulling a large GPU image can take minutes: use 300 or more there).
"""

from __future__ import annotations

import argparse
from datetime import timedelta

from prefect.automations import Automation
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification

NAME = "transcribe-all: crash zombie flow runs"


def zombie_automation(within_s: float) -> Automation:
    return Automation(
        name=NAME,
        trigger=EventTrigger(
            # Pending too: a worker killed while its run is still starting leaves it Pending, silent
            after={"prefect.flow-run.heartbeat", "prefect.flow-run.Pending"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Running",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=within_s),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"No heartbeat for {within_s:.0f} s: the worker is gone; the shard will be resubmitted.",
            )
        ],
    )


def ensure_zombie_automation(within_s: float = 90) -> None:
    """Create it, replacing an older one of the same name."""
    try:
        Automation.read(name=NAME).delete()
    except ValueError:
        pass  # none yet
    zombie_automation(within_s).create()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--within", type=float, default=90, help="seconds without a heartbeat before crashing")
    ensure_zombie_automation(parser.parse_args().within)
