"""Prefect entry point of fine-tuning: a registered model on a domain JSONL."""

from __future__ import annotations

from prefect import get_run_logger

from tasks.common.task import step_task
from tasks.config import LmforgeConfig
from tasks.finetune.finetune import finetune


@step_task("finetune", hours=72)
def finetune_task(config: LmforgeConfig, base_model: str, data: str) -> dict:
    """Fine-tune `base_model` (models:/<name>@champion, a version or a folder) on `data`;
    returns before/after metrics and the registered version."""
    logger = get_run_logger()
    return finetune(config, base_model, data, on_line=logger.info)
