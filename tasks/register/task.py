"""Prefect entry point of the register step (MLflow Model Registry)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.common.step import StepResult, run_step
from tasks.config import LmforgeConfig
from tasks.register.registry import register_model


@task(name="register", cache_policy=NO_CACHE)
def register_step(config: LmforgeConfig, trained: StepResult, evaluated: StepResult) -> StepResult:
    """Register the evaluated model as a new version of `tracking.model_name`."""
    return run_step(
        config.run.work_dir,
        "register",
        {"model_name": config.tracking.model_name, "tracking_uri": config.mlflow_uri()},
        [trained, evaluated],
        ["tasks/register", "model"],
        lambda out: register_model(config, trained, evaluated, out),
    )
