"""Training guards for unattended runs: skip non-finite steps, roll back loss spikes, or stop.

After every optimizer step each rank hands the guard the same numbers (the loss averaged over
the ranks, the global gradient norm, and whether DeepSpeed applied the step), so every rank
takes the same decision without another collective:

- A non-finite loss or gradient norm is a bad step. It is skipped and counted: under ZeRO 1-3
  and fp16 DeepSpeed's own overflow check has already dropped its gradients (bf16 has no loss
  scaler to do it otherwise; the tests show it under ZeRO 2 bf16). Where DeepSpeed applies such
  a step anyway (ZeRO 0 without a loss scaler), the weights turn non-finite, so do the next
  steps' losses, and the rule below rolls the run back.
- `train.max_bad_steps` bad steps in a row, or a loss spike (the loss above the mean + k·std of
  the last `train.spike_window` good steps, k = `train.spike_sigmas`, as llm-foundry's
  kill-loss-spike callback does), roll the run back to its last complete checkpoint and scale
  the learning rate by `train.rollback_lr_factor`. The data stream is not rewound: the batches
  since the checkpoint are skipped, as PaLM did for its spikes.
- A rollback past `train.max_rollbacks`, or one with no checkpoint to go back to, stops the run
  with a `TrainingStopped` message that says what happened, at which step and where.

The outcome (`healthy`, `recovered`, `unhealthy` or `stopped`) goes to the summary and the
MLflow run (tag `lmforge.train.health`); the promotion gate refuses all but the first two.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass
from typing import Any

from model.config import TrainConfig

HEALTHY, RECOVERED, UNHEALTHY, STOPPED = "healthy", "recovered", "unhealthy", "stopped"
PROMOTABLE = (HEALTHY, RECOVERED)
HEALTH_TAG = "lmforge.train.health"  # the MLflow run tag that holds the outcome
# A plateau's std can be ~0; below this fraction of the mean it counts as this much.
MIN_RELATIVE_STD = 0.005


class TrainingStopped(RuntimeError):
    """The guard gave up on the run; the message says why, at which step and where."""


@dataclass
class Verdict:
    """What the guard decided about one step."""

    action: str  # "ok", "skip" (bad step, counted) or "rollback"
    reason: str = ""

    @property
    def applied(self) -> bool:
        """Whether the step's update stands (the weight average may take it)."""
        return self.action == "ok"


class Guard:
    """Watches each step's loss and gradient norm; see the module docstring."""

    def __init__(self, train: TrainConfig) -> None:
        self.train = train
        self.window: deque[float] = deque(maxlen=max(1, train.spike_window))
        self.bad_in_a_row = 0
        self.bad_steps = 0
        self.scaler_skips = 0
        self.spikes = 0
        self.rollbacks = 0
        self.lr_scale = 1.0

    def lr_factor(self) -> float:
        """The factor the learning-rate schedule is multiplied by (lowered at each rollback)."""
        return self.lr_scale

    def check(self, step: int, loss: float, grad_norm: float | None, applied: bool) -> Verdict:
        """Judge step `step`: its loss (mean over ranks), global grad norm, and whether
        DeepSpeed applied the update (False when its overflow check skipped it)."""
        if not applied and self.train.precision == "fp16" and math.isfinite(loss):
            # fp16's dynamic loss scaler overflowed: DeepSpeed skipped the step and halves the
            # scale. Routine at the start of a run, so not a bad step.
            self.scaler_skips += 1
            return Verdict("skip", "the fp16 loss scaler overflowed (scale lowered)")
        norm_bad = grad_norm is not None and not math.isfinite(grad_norm)
        if not math.isfinite(loss) or norm_bad or not applied:
            self.bad_in_a_row += 1
            self.bad_steps += 1
            what = f"loss {loss:.4g}, grad norm {grad_norm}"
            if self.bad_in_a_row >= self.train.max_bad_steps:
                return self._rollback(
                    step, f"{self.bad_in_a_row} non-finite steps in a row (last: {what})"
                )
            return Verdict("skip", f"non-finite step skipped ({what})")
        self.bad_in_a_row = 0
        if self.train.spike_window and len(self.window) == self.window.maxlen:
            mean = statistics.fmean(self.window)
            std = max(statistics.pstdev(self.window), MIN_RELATIVE_STD * abs(mean))
            limit = mean + self.train.spike_sigmas * std
            if loss > limit:
                self.spikes += 1
                return self._rollback(
                    step,
                    f"loss spike: {loss:.4g} > {limit:.4g} (mean {mean:.4g} + "
                    f"{self.train.spike_sigmas:g} x std {std:.3g} of the last "
                    f"{len(self.window)} steps)",
                )
        self.window.append(loss)
        return Verdict("ok")

    def _rollback(self, step: int, reason: str) -> Verdict:
        self.bad_in_a_row = 0
        if self.rollbacks >= self.train.max_rollbacks:
            return Verdict("stop", f"step {step}: {reason}; {self.rollbacks} rollback(s) already")
        self.rollbacks += 1
        self.lr_scale *= self.train.rollback_lr_factor
        return Verdict("rollback", f"step {step}: {reason}")

    def outcome(self, final_val_loss: float) -> str:
        """The run's health once it finished: unhealthy when its model scores non-finite."""
        if not math.isfinite(final_val_loss):
            return UNHEALTHY
        return RECOVERED if self.bad_steps or self.rollbacks else HEALTHY

    def counts(self) -> dict[str, float]:
        """The guard's counters, as `train.*` metrics."""
        return {
            "guard.bad_steps": float(self.bad_steps),
            "guard.scaler_skips": float(self.scaler_skips),
            "guard.loss_spikes": float(self.spikes),
            "guard.rollbacks": float(self.rollbacks),
            "guard.lr_scale": self.lr_scale,
        }

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps, so a resumed run goes on with the same counts and lr."""
        return {
            "window": list(self.window),
            "bad_steps": self.bad_steps,
            "scaler_skips": self.scaler_skips,
            "spikes": self.spikes,
            "rollbacks": self.rollbacks,
            "lr_scale": self.lr_scale,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (on resume after a kill, not on a rollback)."""
        self.window.clear()
        self.window.extend(state["window"])
        self.bad_steps, self.spikes = state["bad_steps"], state["spikes"]
        self.scaler_skips = state.get("scaler_skips", 0)
        self.rollbacks, self.lr_scale = state["rollbacks"], state["lr_scale"]
