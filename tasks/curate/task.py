"""Prefect entry point of the curate step."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.common.spark import spark_session
from tasks.common.step import StepResult, run_step
from tasks.config import LmforgeConfig
from tasks.curate.curate import curate_documents


@task(name="curate", cache_policy=NO_CACHE)
def curate_step(config: LmforgeConfig, extracted: StepResult) -> StepResult:
    """Filter and deduplicate the extracted documents into `<work_dir>/curate/`."""
    spark = spark_session(config.spark)
    return run_step(
        config.run.work_dir,
        "curate",
        {"curate": config.to_dict()["curate"]},
        [extracted],
        ["tasks/curate"],
        lambda out: curate_documents(spark, f"{extracted.path}/docs", config.curate, out),
    )
