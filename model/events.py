"""Structured progress from the ranks to whoever launched them: one JSON object per line.

Rank 0 prints each event as `@lmforge-event {"event": "<kind>", ...}` on its standard output,
beside the human lines it prints for the log. `model.launch.launch_training` takes these lines
out of the stream and hands the parsed objects to its `on_event` callback (the train step moves
its Prefect progress artifact with them), so nothing downstream matches printed text. Kinds:

| event | fields |
| --- | --- |
| `resumed` | `step`, `checkpoint` |
| `step` | `step`, `steps`, `metrics` (name -> value) |
| `guard` | `step`, `action` (skip, rollback), `reason`, `counts` |
| `done` | `summary` (train_summary.json's contents) |
"""

from __future__ import annotations

import json
from typing import Any

PREFIX = "@lmforge-event "


def emit(kind: str, **fields: Any) -> None:
    """Print one event line (rank 0 only: the caller decides)."""
    print(PREFIX + json.dumps({"event": kind, **fields}), flush=True)


def parse(line: str) -> dict[str, Any] | None:
    """The event a line carries, or None for an ordinary output line (also one whose JSON was
    cut or mixed with another rank's output: a progress line must never end a run). With a
    hostfile, pdsh puts `<host>: ` before each line; that prefix is skipped."""
    start = line.find(PREFIX)
    if start < 0 or (start and not line[:start].rstrip().endswith(":")):
        return None
    try:
        event = json.loads(line[start + len(PREFIX) :])
    except ValueError:
        return None
    return event if isinstance(event, dict) and "event" in event else None
