"""Faults injected on purpose into a training run, for the tests and for drills.

    LMFORGE_FAULTS='{"nan_loss_steps": [7], "spike_steps": [12], "abort_at_exit_ranks": [1]}'

- `nan_loss_steps`: the loss of these optimizer steps is made NaN before the backward pass
  (a poisoned batch), on every rank;
- `spike_steps`: their loss is multiplied by `spike_factor` (default 50) before the backward;
- `abort_at_exit_ranks`: these ranks call `os.abort()` after their work is done, where the
  process would exit (a crash in teardown);
- `kill_at_step`: after this step (and its checkpoint, if one is due), rank 0 SIGKILLs its
  process group, the launcher and every rank with it: a crash with no chance to clean up, at
  a step the test chose rather than when its reader got round to it.
Each step fault fires once per process: a step run again after a rollback is clean. Unset, the
variable costs nothing and changes nothing.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import dataclass, field

ENV = "LMFORGE_FAULTS"


@dataclass
class Faults:
    nan_loss_steps: set[int] = field(default_factory=set)
    spike_steps: set[int] = field(default_factory=set)
    spike_factor: float = 50.0
    abort_at_exit_ranks: set[int] = field(default_factory=set)
    kill_at_step: int | None = None
    fired: set[int] = field(default_factory=set)

    def kill_run(self) -> None:
        """SIGKILL this process's group (the launcher started it in its own session)."""
        sys.stdout.flush()
        os.killpg(os.getpgid(0), signal.SIGKILL)

    def loss_factor(self, step: int) -> float:
        """What this step's loss is multiplied by: 1.0 unless a fault is due (once per step)."""
        if step in self.fired or step not in self.nan_loss_steps | self.spike_steps:
            return 1.0
        self.fired.add(step)
        return float("nan") if step in self.nan_loss_steps else self.spike_factor


KEYS = ("nan_loss_steps", "spike_steps", "spike_factor", "abort_at_exit_ranks", "kill_at_step")


def from_env() -> Faults:
    """The faults `LMFORGE_FAULTS` asks for (none when it is unset); a bad value fails here."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return Faults()
    try:
        values = json.loads(raw)
        unknown = set(values) - set(KEYS)
        if unknown:
            raise ValueError(f"unknown key(s) {sorted(unknown)}; known: {list(KEYS)}")
        return Faults(
            nan_loss_steps={int(s) for s in values.get("nan_loss_steps", [])},
            spike_steps={int(s) for s in values.get("spike_steps", [])},
            spike_factor=float(values.get("spike_factor", 50.0)),
            abort_at_exit_ranks={int(r) for r in values.get("abort_at_exit_ranks", [])},
            kill_at_step=int(values["kill_at_step"]) if "kill_at_step" in values else None,
        )
    except (ValueError, TypeError, AttributeError) as err:
        raise ValueError(f"{ENV}={raw!r} is not valid: {err}") from err
