"""A Parquet part that cannot be read, as one line that names the file and what to do about it.

A run quarantines unreadable manifest and staged parts before it reads them
(tasks/output/recovery.py); `search` and `site` only read, so they stop with this error
instead of a pyarrow traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

RERUN = "run `transcribe-all run` into this DIR again to quarantine it, or delete it"
DELETE = "delete it (it holds one run's metrics row; the run's files are in the manifest)"


class CorruptPartError(RuntimeError):
    """One line: the part, why it cannot be read, what to do."""

    def __init__(self, path: Path, error: BaseException, fix: str = RERUN) -> None:
        reason = " ".join(str(error).split())[:200]
        super().__init__(f"{path} cannot be read ({reason}): {fix}")
        self.path = path


def first_unreadable(parts: Iterable[Path], columns: list[str]) -> tuple[Path, BaseException] | None:
    """The first part whose footer or `columns` cannot be read, with the error."""
    for path in parts:
        try:
            part = pq.ParquetFile(path)
            for group in range(part.num_row_groups):
                part.read_row_group(group, columns=[c for c in columns if c in part.schema_arrow.names])
        except (pa.ArrowException, OSError, ValueError) as error:
            return path, error
    return None


@contextmanager
def naming_unreadable(parts: Callable[[], Iterable[Path]], columns: list[str], fix: str = RERUN) -> Iterator[None]:
    """Turn a read error in the block into a CorruptPartError naming the part (other errors pass)."""
    try:
        yield
    except (pa.ArrowException, OSError) as error:
        bad = first_unreadable(parts(), columns)
        if bad is None:
            raise
        raise CorruptPartError(*bad, fix) from error
