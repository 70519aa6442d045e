"""DESIGN.md's import boundaries: model/ imports neither Prefect nor Spark, model/gpt.py only
torch, and only flows/ and the tasks' task.py entry points import Prefect."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def modules_under(folder: str, skip_name: str | None = None) -> list[str]:
    names = []
    for path in sorted((REPO / folder).rglob("*.py")):
        if path.name == skip_name:
            continue
        names.append(
            ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        )
    return names


def imported_after(modules: list[str]) -> set[str]:
    """Top-level packages loaded by importing `modules` in a fresh interpreter."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_model_imports_neither_prefect_nor_spark():
    loaded = imported_after(modules_under("model"))
    assert "torch" in loaded
    assert not loaded & {"prefect", "pyspark"}


def test_only_task_entry_points_import_prefect():
    loaded = imported_after(modules_under("tasks", skip_name="task.py"))
    assert "pyspark" in loaded  # the data steps are Spark jobs
    assert "prefect" not in loaded


def test_gpt_imports_only_torch_and_the_standard_library():
    tree = ast.parse((REPO / "model" / "gpt.py").read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            roots.add(node.module.split(".")[0])
    assert roots - set(sys.stdlib_module_names) == {"torch"}
