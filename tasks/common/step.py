"""The step contract: fingerprinted output folders, written aside and renamed into place.

Every step writes `<work_dir>/<step>/<fingerprint>/`. The fingerprint hashes the step's resolved
config, its inputs' fingerprints and the version of the code it runs. The step builds into a
temporary sibling folder; `config.json` and `stats.json` go in, `_SUCCESS` last, then one rename
publishes it. A folder with `_SUCCESS` is complete and the step is skipped on re-run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_PACKAGES = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class StepResult:
    """A finished step: where its output is and what it counted. Steps pass these, not data."""

    step: str
    fingerprint: str
    path: str
    stats: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False


def code_version(packages: Iterable[str]) -> str:
    """Hash of the source files under `packages` (folders or files, e.g. `tasks/crawl`)."""
    digest = hashlib.sha256()
    for package in sorted(packages):
        root = REPO_PACKAGES / package
        sources = [root] if root.is_file() else sorted(root.rglob("*.py"))
        if not sources:
            raise FileNotFoundError(f"code_version: no Python source under {root}")
        for source in sources:
            digest.update(str(source.relative_to(REPO_PACKAGES)).encode())
            digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def step_fingerprint(step: str, config: dict[str, Any], inputs: list[StepResult], code: str) -> str:
    """Stable 16-hex-digit hash of everything that determines a step's output."""
    payload = {
        "step": step,
        "config": config,
        "inputs": {i.step: i.fingerprint for i in inputs},
        "code": code,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def run_step(
    work_dir: str | Path,
    step: str,
    config: dict[str, Any],
    inputs: list[StepResult],
    code_packages: Iterable[str],
    build: Callable[[Path], dict[str, Any]],
) -> StepResult:
    """Run `build(tmp_dir) -> stats` unless the fingerprinted output is already complete."""
    fingerprint = step_fingerprint(step, config, inputs, code_version(code_packages))
    step_dir = Path(work_dir).resolve() / step
    final = step_dir / fingerprint
    if (final / "_SUCCESS").is_file():
        stats = json.loads((final / "stats.json").read_text())
        return StepResult(step, fingerprint, str(final), stats, skipped=True)

    tmp = step_dir / f".tmp-{fingerprint}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    started, t0 = _now(), time.monotonic()
    try:
        stats = build(tmp)
        stats["seconds"] = round(time.monotonic() - t0, 2)
        resolved = {"step": step, "config": config, "inputs": {i.step: i.path for i in inputs}}
        (tmp / "config.json").write_text(json.dumps(resolved, indent=2, sort_keys=True))
        (tmp / "stats.json").write_text(json.dumps(stats, indent=2, sort_keys=True))
        marker = {
            "step": step,
            "fingerprint": fingerprint,
            "inputs": {i.step: i.fingerprint for i in inputs},
            "started_at": started,
            "finished_at": _now(),
        }
        (tmp / "_SUCCESS").write_text(json.dumps(marker, indent=2))
        if final.exists():  # an earlier attempt that never got its _SUCCESS
            shutil.rmtree(final)
        os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return StepResult(step, fingerprint, str(final), stats)
