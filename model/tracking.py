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

    def log_params(self, params: dict[str, object]) -> None:
        """Record the run's settings (name -> value), once."""

    def log_artifacts(self, folder: Path, artifact_path: str) -> None:
        """Copy the files of `folder` into the run under `artifact_path`."""

    def set_tags(self, tags: dict[str, str]) -> None:
        """Tag the run (name -> value)."""

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
    """Logs into an existing MLflow run (created by the caller, e.g. the pipeline's train task),
    with MLflow's system metrics (CPU, memory, disk, network; GPU where present) every
    `system_every_s` seconds."""

    def __init__(self, uri: str, run_id: str, system_every_s: float = 10.0) -> None:
        from mlflow import MlflowClient  # lazy: importing mlflow costs seconds
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        self.client = MlflowClient(tracking_uri=uri)
        self.run_id = run_id
        self.client.get_run(run_id)  # fail now, with MLflow's message, if the run does not exist
        self.system = SystemMetricsMonitor(
            run_id, sampling_interval=system_every_s, resume_logging=True, tracking_uri=uri
        )
        self.system.start()

    def log_params(self, params: dict[str, object]) -> None:
        from mlflow.entities import Param

        logged = self.client.get_run(self.run_id).data.params  # a resumed run logs them again
        batch = [Param(k, str(v)) for k, v in params.items() if k not in logged]
        for start in range(0, len(batch), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=batch[start : start + 100])

    def log_artifacts(self, folder: Path, artifact_path: str) -> None:
        self.client.log_artifacts(self.run_id, str(folder), artifact_path)

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        batch = [RunTag(k, str(v)[:5000]) for k, v in tags.items()]
        self.client.log_batch(self.run_id, tags=batch)

    def close(self) -> None:
        self.system.finish()

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

    def log_params(self, params: dict[str, object]) -> None:
        for tracker in self.trackers:
            tracker.log_params(params)

    def log_artifacts(self, folder: Path, artifact_path: str) -> None:
        for tracker in self.trackers:
            tracker.log_artifacts(folder, artifact_path)

    def set_tags(self, tags: dict[str, str]) -> None:
        for tracker in self.trackers:
            tracker.set_tags(tags)

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.close()


def make_tracker(
    uri: str, run_id: str, metrics_path: Path, system_every_s: float = 10.0
) -> Tracker:
    """metrics.jsonl always; MLflow too when both `uri` and `run_id` are given."""
    trackers: list[Tracker] = [JsonlTracker(metrics_path)]
    if uri and run_id:
        trackers.append(MlflowTracker(uri, run_id, system_every_s))
    return FanoutTracker(trackers)
