"""The layers import downward only: `tasks/`, `flows/` and `blocks/` never import the CLI package `transcribe_all`.

Not even lazily inside a function: a worker runs flows and tasks without the CLI, so what they need
(the worker's settings, the installed models) lives in `tasks/`.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOWER_LAYERS = ("tasks", "flows", "blocks")
TOP = "transcribe_all"


def upward_imports(source: str, name: str) -> list[str]:
    """`name:line: statement` for every import of `transcribe_all` in `source`, wherever it stands."""
    found = []
    for node in ast.walk(ast.parse(source, filename=name)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        else:
            continue  # a relative import stays inside its own package
        if any(module == TOP or module.startswith(f"{TOP}.") for module in modules):
            found.append((node.lineno, f"{name}:{node.lineno}: {ast.unparse(node)}"))
    return [line for _, line in sorted(found)]


def test_tasks_flows_and_blocks_never_import_the_cli_package() -> None:
    files = sorted(path for layer in LOWER_LAYERS for path in (ROOT / layer).rglob("*.py"))
    assert len(files) > 50, f"found only {len(files)} files under {', '.join(LOWER_LAYERS)}"
    found = [line for path in files
             for line in upward_imports(path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix())]
    assert not found, (f"{', '.join(LOWER_LAYERS)} must not import {TOP}, the CLI package above them;"
                       " move what they need into tasks/:\n" + "\n".join(found))


def test_the_check_sees_every_form_of_the_import_even_inside_functions() -> None:
    source = """\
import os
import transcribe_all
import os.path, transcribe_all.cli as cli
from transcribe_all import cli
from transcribe_all.settings import worker_settings
from transcribe_all_extra import thing
from . import transcribe_all
from tasks import transcribe_all_like


def later():
    from transcribe_all.models import bundled_whisper_ct2

    class Inner:
        import transcribe_all.run
"""
    assert [line.split(":")[1] for line in upward_imports(source, "tasks/x.py")] == ["2", "3", "4", "5", "12", "15"]
    assert upward_imports(source, "tasks/x.py")[0] == "tasks/x.py:2: import transcribe_all"
