"""What a flow run's logs hold: every warning of the project's own modules, and a user's mistake in one line.

The engine, decode and output code logs with `logging.getLogger(__name__)`: it must run (and be tested)
without a Prefect run. Prefect sends only its own loggers to the API. `PREFECT_LOGGING_EXTRA_LOGGERS`
would add ours, but only in processes whose environment carries it (every worker, the CLI, a script that
calls a flow), and it warns for each line logged where no run is known (a decoder thread, the lease
renewer). So each flow attaches Prefect's own API handler to the project's loggers when it starts
(`send_project_logs_to_runs`): the lines keep going to the console as before, through the root logger,
and now also to the run (and task run) they were logged in; in the UI that is the run's *Logs* tab.

Prefect logs a flow's exception with its traceback, twice (the flow engine and its wrapper). A
`ConfigError` is the user's mistake, already one line naming the parameter: it is logged as that line,
once, and is the run's state message.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect.context import get_run_context
from prefect.exceptions import MissingContextError
from prefect.logging.handlers import APILogHandler
from prefect.runtime.flow_run import get_id as flow_run_id_of_process

from tasks.run_config import ConfigError

PROJECT_LOGGERS = ("tasks", "flows", "blocks", "transcribe_all")
PREFECT_RUN_LOGGER = "prefect.flow_runs"  # the flow engine logs a run's exception here


class RunLogHandler(APILogHandler):
    """Prefect's API handler for the project's loggers. A line logged outside a run context goes to the
    run its process was started for (a worker's flow-run process knows it), else only to the console."""

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "flow_run_id", None) is None and not _in_run_context():
            run_id = flow_run_id_of_process()
            if run_id is None:
                return
            record.flow_run_id = run_id
        super().emit(record)


class ConfigErrorOneLine(logging.Filter):
    """A record carrying a ConfigError becomes the error's line, without the traceback; later records
    of the same error (Prefect logs it again on the way out) are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, ConfigError):
            return True
        if getattr(error, "logged_once", False):
            return False
        error.logged_once = True  # type: ignore[attr-defined]
        record.msg, record.args = "%s", (str(error),)
        record.exc_info, record.exc_text = None, None
        return True


def send_project_logs_to_runs() -> None:
    """Attach the handler and the filter once per process (every flow calls this first)."""
    for name in PROJECT_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(handler, RunLogHandler) for handler in logger.handlers):
            logger.addHandler(RunLogHandler())
    prefect_runs = logging.getLogger(PREFECT_RUN_LOGGER)
    if not any(isinstance(known, ConfigErrorOneLine) for known in prefect_runs.filters):
        prefect_runs.addFilter(ConfigErrorOneLine())


def _in_run_context() -> bool:
    try:
        context: Any = get_run_context()
    except MissingContextError:
        return False
    return context is not None
