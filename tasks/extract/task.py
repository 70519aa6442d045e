"""Prefect entry point of the extract step (trafilatura main text, language id)."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.common.spark import spark_session
from tasks.common.step import StepResult, run_step
from tasks.config import LmforgeConfig
from tasks.extract.extract import extract_documents


@task(name="extract", cache_policy=NO_CACHE)
def extract_step(config: LmforgeConfig, crawled: StepResult) -> StepResult:
    """Turn crawled pages and books into document records in `<work_dir>/extract/`."""
    spark = spark_session(config.spark)
    return run_step(
        config.run.work_dir,
        "extract",
        {"extract": config.to_dict()["extract"]},
        [crawled],
        ["tasks/extract"],
        lambda out: extract_documents(spark, Path(crawled.path), config.extract, out),
    )
