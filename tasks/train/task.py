"""Prefect entry point of the train step: the `deepspeed` launcher as a subprocess."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.common.step import StepResult, run_step
from tasks.config import LmforgeConfig
from tasks.train.trainer import train_model


@task(name="train", cache_policy=NO_CACHE)
def train_step(config: LmforgeConfig, tokens: StepResult, upstream: list[StepResult]) -> StepResult:
    """Train the GPT on the token shards; its output folder holds checkpoints and the export."""
    logger = get_run_logger()
    settings = config.to_dict()
    return run_step(
        config.run.work_dir,
        "train",
        {
            "model": settings["model"],
            "train": settings["train"],
            "tracking_uri": config.mlflow_uri(),
        },
        [tokens],
        ["tasks/train", "model"],
        lambda out: train_model(config, tokens, upstream, out, on_line=logger.info),
    )
