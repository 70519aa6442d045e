"""Prefect entry point of the crawl step (pages over HTTP, plus books from a folder)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.common.spark import spark_session
from tasks.common.step import StepResult, run_step
from tasks.config import LmforgeConfig
from tasks.crawl.crawler import crawl


@task(name="crawl", cache_policy=NO_CACHE)
def crawl_step(config: LmforgeConfig) -> StepResult:
    """Crawl the configured seeds (default: the embedded pydoc site) into `<work_dir>/crawl/`."""
    spark = spark_session(config.spark)
    return run_step(
        config.run.work_dir,
        "crawl",
        {"crawl": config.to_dict()["crawl"]},
        [],
        ["tasks/crawl"],
        lambda out: crawl(spark, config.crawl, out),
    )
