"""Which labelled set a run's `canary` parameter names, checked before any work (no Prefect import).

`shipped` is the project's example clips (`examples/library` + `examples/references.tsv`);
a folder holds audio and a `references.tsv` (tab-separated `source` and `text` columns,
`source` relative to the folder); `off` turns the canary off.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from tasks.run_config import SHIPPED_CANARY

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


class CanarySetError(ValueError):
    """The labelled set cannot be used: a missing folder, TSV, column or audio file."""


@dataclass(frozen=True, slots=True)
class LabelledSet:
    folder: Path
    references: tuple[tuple[str, str], ...]  # (source relative to folder, reference text)


def resolve_canary(canary: str | None, references: str | None, engine: str) -> LabelledSet | None:
    """The labelled set a run's `canary` parameter names: `shipped`, a folder, or off/None."""
    if canary is None or canary.strip().lower() in ("", "off", "none"):
        return None
    if canary == SHIPPED_CANARY:
        if engine == "fake":
            return None  # the fake engine says no words: there is nothing to score
        folder, tsv = EXAMPLES / "library", EXAMPLES / "references.tsv"
        if not tsv.is_file():
            raise CanarySetError(f"canary: the shipped set is not in this install ({tsv}); "
                                 "pass canary=FOLDER with a references.tsv, or canary=off")
    else:
        folder = Path(canary)
        tsv = Path(references) if references else folder / "references.tsv"
    if not folder.is_dir():
        raise CanarySetError(f"canary: not a folder: {folder}; pass a folder of labelled audio, or canary=off")
    pairs = load_references(tsv)
    missing = [source for source, _ in pairs if not (folder / source).is_file()]
    if missing:
        raise CanarySetError(f"canary: {len(missing)} files listed in {tsv} are not in {folder}, e.g. {missing[0]}")
    return LabelledSet(folder, pairs)


def load_references(tsv: Path) -> tuple[tuple[str, str], ...]:
    """`source` and `text` columns of a tab-separated file with a header."""
    try:
        with tsv.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
    except OSError as error:
        raise CanarySetError(f"canary: cannot read references {tsv}: {error.strerror or error}") from error
    if not rows or not {"source", "text"} <= set(rows[0]):
        raise CanarySetError(f"canary: {tsv} needs a header with tab-separated `source` and `text` columns")
    return tuple((row["source"], row["text"] or "") for row in rows)


