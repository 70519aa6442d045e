"""Where training metrics go: a small interface with a do-nothing default.

Only rank 0 of a training run holds a real tracker. MLflow is imported lazily, so the model and
its tests never import it unless a tracking URI is configured.
"""

from __future__ import annotations

import json
import time
from pathlib import Path


class Tracker:
    """Logs nowhere: the default, and the base of every real tracker."""

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Record `metrics` (name -> value) at optimizer step `step`."""

    def close(self) -> None:
        """Flush and release whatever the tracker holds."""


class JsonlTracker(Tracker):
    """Appends one JSON line per logged step: {"step": ..., "time": ..., <metrics>}."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        record = {"step": step, "time": round(time.time(), 3), **metrics}
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")


class MlflowTracker(Tracker):
    """Logs into an existing MLflow run (created by the caller, e.g. the pipeline's train task)."""

    def __init__(self, uri: str, run_id: str) -> None:
        from mlflow import MlflowClient  # lazy: importing mlflow costs seconds

        self.client = MlflowClient(tracking_uri=uri)
        self.run_id = run_id
        self.client.get_run(run_id)  # fail now, with MLflow's message, if the run does not exist

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now_ms = int(time.time() * 1000)
        batch = [Metric(key, float(value), now_ms, step) for key, value in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch)


class FanoutTracker(Tracker):
    """Sends every call to each of several trackers."""

    def __init__(self, trackers: list[Tracker]) -> None:
        self.trackers = trackers

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for tracker in self.trackers:
            tracker.log_metrics(metrics, step)

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.close()


def make_tracker(uri: str, run_id: str, metrics_path: Path) -> Tracker:
    """metrics.jsonl always; MLflow too when both `uri` and `run_id` are given."""
    trackers: list[Tracker] = [JsonlTracker(metrics_path)]
    if uri and run_id:
        trackers.append(MlflowTracker(uri, run_id))
    return FanoutTracker(trackers)
