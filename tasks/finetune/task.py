"""Prefect entry point of fine-tuning: a registered model on a domain JSONL."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.config import LmforgeConfig
from tasks.finetune.finetune import finetune


@task(name="finetune", cache_policy=NO_CACHE, timeout_seconds=72 * 3600)
def finetune_task(config: LmforgeConfig, base_model: str, data: str) -> dict:
    """Fine-tune `base_model` (models:/<name>@champion, a version or a folder) on `data`;
    returns before/after metrics and the registered version."""
    logger = get_run_logger()
    return finetune(config, base_model, data, on_line=logger.info)
