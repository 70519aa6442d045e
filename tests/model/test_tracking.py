"""Trackers: metrics.jsonl always, and a real MLflow run (SQLite store) when configured."""

from __future__ import annotations

import json
import time
from pathlib import Path

from model.tracking import FanoutTracker, JsonlTracker, Tracker, make_tracker


def test_jsonl_lines_and_the_null_tracker(tmp_path: Path) -> None:
    tracker = make_tracker("", "", tmp_path / "out" / "metrics.jsonl")
    assert isinstance(tracker, FanoutTracker)
    assert [type(t) for t in tracker.trackers] == [JsonlTracker]
    tracker.log_metrics({"train_loss": 2.5, "lr": 1e-3}, step=1)
    tracker.log_metrics({"val_loss": 2.0}, step=10)
    tracker.close()
    lines = [json.loads(x) for x in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert [(x["step"], x.get("train_loss"), x.get("val_loss")) for x in lines] == [
        (1, 2.5, None),
        (10, None, 2.0),
    ]
    Tracker().log_metrics({"x": 1.0}, 1)  # the default logs nowhere and never fails


def test_mlflow_tracker_logs_into_an_existing_run(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("t", artifact_location=(tmp_path / "art").as_uri())
    run_id = client.create_run(experiment).info.run_id
    client.log_param(run_id, "train.lr", "0.1")  # logged by the caller before training
    tracker = make_tracker(uri, run_id, tmp_path / "metrics.jsonl", system_every_s=0.2)
    tracker.log_params({"train.lr": 0.2, "model.num_params": 123})  # a known key is kept
    for step, loss in [(1, 3.0), (2, 2.0)]:
        tracker.log_metrics({"train_loss": loss}, step)
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "COMPLETE.json").write_text("{}")
    tracker.log_artifacts(tmp_path / "ckpt", "checkpoints/step00000002")
    deadline = time.monotonic() + 60  # until the sampling thread has published once
    while not any(k.startswith("system/") for k in client.get_run(run_id).data.metrics):
        assert time.monotonic() < deadline, "no system metrics were logged in 60 s"
        time.sleep(0.2)
    tracker.close()
    history = client.get_metric_history(run_id, "train_loss")
    assert [(m.step, m.value) for m in history] == [(1, 3.0), (2, 2.0)]
    run = client.get_run(run_id)
    assert run.data.params == {"train.lr": "0.1", "model.num_params": "123"}
    assert any(key.startswith("system/") for key in run.data.metrics)  # psutil-based sampling
    listed = client.list_artifacts(run_id, "checkpoints/step00000002")
    assert [a.path for a in listed] == ["checkpoints/step00000002/COMPLETE.json"]
