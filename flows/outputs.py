"""Finding finished step outputs on disk, for flows that start from an earlier run's output
(a step flow run on its own, the scheduled deployments) instead of running the steps before."""

from __future__ import annotations

import json
from pathlib import Path

from tasks.common.step import StepResult

# The pipeline's steps in order (`flows/pipeline.py`; `lmforge run --until` takes one).
STEPS = ("crawl", "extract", "curate", "tokenize", "train", "evaluate", "register")


def step_output(path: str | Path) -> StepResult:
    """The StepResult of a complete output folder `<work_dir>/<step>/<fingerprint>/`."""
    folder = Path(path).resolve()
    marker = folder / "_SUCCESS"
    if not marker.is_file():
        raise FileNotFoundError(
            f"{folder} is not a complete step output (no _SUCCESS); give a folder "
            "<work_dir>/<step>/<fingerprint> of a finished run, or run that step first"
        )
    done = json.loads(marker.read_text())
    stats = json.loads((folder / "stats.json").read_text())
    return StepResult(done["step"], done["fingerprint"], str(folder), stats, skipped=True)


def finished_outputs(work_dir: str | Path, step: str) -> list[StepResult]:
    """Every complete output of `step` under `work_dir`, oldest first (by finishing time)."""
    markers = sorted((Path(work_dir) / step).glob("*/_SUCCESS"), key=_finished)
    return [step_output(marker.parent) for marker in markers]


def _finished(marker: Path) -> tuple[int, str]:
    """When an output was finished: the nanoseconds its _SUCCESS records (written last), else,
    for an output from before that field, the marker's modification time; then its name."""
    try:
        finished = int(json.loads(marker.read_text())["finished_ns"])
    except (ValueError, KeyError, TypeError):
        finished = marker.stat().st_mtime_ns
    return finished, marker.parent.name


def latest_output(work_dir: str | Path, step: str) -> StepResult:
    """The most recently finished output of `step` under `work_dir`."""
    outputs = finished_outputs(work_dir, step)
    if not outputs:
        raise FileNotFoundError(
            f"no finished '{step}' output under {Path(work_dir).resolve()}; run the "
            f"'{step}' flow (or the pipeline) first, or give the folder explicitly"
        )
    return outputs[-1]


def lineage(result: StepResult) -> list[StepResult]:
    """`result` and every output it was built from, upstream first (from each config.json)."""
    inputs = json.loads((Path(result.path) / "config.json").read_text()).get("inputs", {})
    chain: list[StepResult] = []
    for path in inputs.values():
        for found in lineage(step_output(path)):
            if found.path not in {r.path for r in chain}:
                chain.append(found)
    return [*chain, result]
