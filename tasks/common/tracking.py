"""MLflow from the driver: one run per trained model, which evaluation and registration extend.

In the embedded default the tracking store is SQLite in the work directory and artifacts go to
`<work_dir>/mlartifacts`; with a server URI the server decides where artifacts live.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tasks.config import LmforgeConfig


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """`{"train": {"lr": 0.1}}` -> `{"train.lr": "0.1"}`, the shape MLflow params take."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:6000]
    return flat


def experiment_id(config: LmforgeConfig) -> str:
    """The configured experiment's id, created on first use (with a local artifact root)."""
    import mlflow

    mlflow.set_tracking_uri(config.mlflow_uri())
    existing = mlflow.get_experiment_by_name(config.tracking.experiment)
    if existing is not None:
        return existing.experiment_id
    location = None
    if not config.tracking.tracking_uri:
        location = (Path(config.run.work_dir).resolve() / "mlartifacts").as_uri()
    return mlflow.create_experiment(config.tracking.experiment, artifact_location=location)


def start_run(config: LmforgeConfig, run_name: str, tags: dict[str, str]) -> str:
    """Create a run holding the resolved config as params and lineage as tags; return its id."""
    from mlflow import MlflowClient
    from mlflow.entities import Param

    client = MlflowClient(config.mlflow_uri())
    run = client.create_run(experiment_id(config), run_name=run_name, tags=tags)
    params = flatten(config.to_dict())
    items = [Param(k, v) for k, v in sorted(params.items())]
    for start in range(0, len(items), 100):
        client.log_batch(run.info.run_id, params=items[start : start + 100])
    return run.info.run_id


def log_metrics(config: LmforgeConfig, run_id: str, metrics: dict[str, float]) -> None:
    """Log final numbers (e.g. evaluation results) on an existing run."""
    from mlflow import MlflowClient

    client = MlflowClient(config.mlflow_uri())
    for name, value in metrics.items():
        client.log_metric(run_id, name, float(value))


def set_tags(config: LmforgeConfig, run_id: str, tags: dict[str, str]) -> None:
    """Tag an existing run."""
    from mlflow import MlflowClient

    client = MlflowClient(config.mlflow_uri())
    for name, value in tags.items():
        client.set_tag(run_id, name, str(value)[:5000])


def end_run(config: LmforgeConfig, run_id: str, status: str) -> None:
    """Mark the run FINISHED or FAILED."""
    from mlflow import MlflowClient

    MlflowClient(config.mlflow_uri()).set_terminated(run_id, status=status)


@contextmanager
def finishing(config: LmforgeConfig, run_id: str) -> Iterator[str]:
    """The block's work on run `run_id`: the run ends FINISHED after it, FAILED when it raises
    (anything, a cancellation too), and the error goes on."""
    try:
        yield run_id
    except BaseException:
        end_run(config, run_id, "FAILED")
        raise
    end_run(config, run_id, "FINISHED")
