"""`search` and `site` over a damaged DIR or with awkward arguments: one line that says what to do."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.output.history import Chart, Series, run_labels, svg_chart
from tasks.output.metrics import write_run_row
from tests.archive_factory import Row, search_json, write_run
from tests.test_site import run_row

ROOT = Path(__file__).resolve().parent.parent
RUN1, RUN2 = "20260101T020000Z-aaaa1111", "20260102T020000Z-bbbb2222"


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    write_run(out, RUN1, [Row("calls/a.wav", [(0.0, 2.0, "Please -refund the customer")])])
    return out


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The command as a user types it."""
    return subprocess.run([sys.executable, "-m", "transcribe_all.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, check=False)


@pytest.mark.parametrize("command", [["search", "refund"], ["site"]])
def test_a_corrupt_manifest_part_is_one_line_naming_it_and_what_to_do(archive: Path, command: list[str]) -> None:
    write_run(archive, RUN2, [Row("calls/b.wav", [(0.0, 1.0, "Another call")])])
    part = next((archive / "manifest" / f"run_id={RUN2}").glob("*.parquet"))
    part.write_bytes(b"PAR1 this is not parquet")  # a torn copy
    done = cli(command[0], str(archive), *command[1:])
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert str(part) in done.stderr and "run `transcribe-all run` into this DIR again to quarantine it, or delete it" \
        in done.stderr and "Traceback" not in done.stderr
    part.unlink()  # doing what it says works
    assert cli(command[0], str(archive), *command[1:]).returncode == 0


def test_a_corrupt_runs_row_stops_the_site_in_one_line(archive: Path) -> None:
    row = write_run_row(archive, run_row(RUN1, 1, 0.2, 0))
    row.write_bytes(b"garbage")
    done = cli("site", str(archive))
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and str(row) in done.stderr
    assert "delete it" in done.stderr


def test_a_query_with_a_leading_dash_goes_after_double_dash(archive: Path) -> None:
    refused = cli("search", str(archive), "-refund")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "transcribe-all search DIR -- -refund" in refused.stderr
    found = cli("search", str(archive), "--json", "--", "-refund")
    assert found.returncode == 0 and [h["source"] for h in json.loads(found.stdout)] == ["calls/a.wav"]
    assert [h["source"] for h in search_json(str(archive), "customer")] == ["calls/a.wav"]


def test_runs_started_in_the_same_minute_get_distinct_labels() -> None:
    ids = ["20260101T020000Z-aaaa1111", "20260101T020007Z-bbbb2222", "20260101T020007Z-cccc3333"]
    assert run_labels(ids) == ["01-01 02:00:00", "01-01 02:00:07 bbbb", "01-01 02:00:07 cccc"]
    chart = svg_chart(Chart("Speed", "x", (Series("RTFx", (1.0, 2.0, 3.0), "#000"),)), ids)
    assert all(label in chart for label in run_labels(ids))
