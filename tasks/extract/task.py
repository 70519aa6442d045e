"""Prefect entry point of the extract step (trafilatura main text, language id)."""

from __future__ import annotations

from pathlib import Path

from prefect.states import State

from tasks.common.spark import spark_session
from tasks.common.step import StepResult, run_step
from tasks.common.task import funnel_rows, published, step_task
from tasks.config import LmforgeConfig
from tasks.extract.extract import extract_documents


@step_task("extract", hours=6)
def extract_step(config: LmforgeConfig, crawled: StepResult) -> State:
    """Turn crawled pages and books into document records in `<work_dir>/extract/`."""
    spark = spark_session(config.spark)
    result = run_step(
        config.run.work_dir,
        "extract",
        {"extract": config.to_dict()["extract"]},
        [crawled],
        [__name__],
        lambda out: extract_documents(spark, Path(crawled.path), config.extract, out),
    )
    stats = result.stats
    dropped = sum(v for k, v in stats.items() if k.startswith("dropped_"))
    inputs = {k: v for k, v in stats.items() if k.startswith("input_")}
    rows = [{"stage": k, "documents": v, "removed": "", "reason": ""} for k, v in inputs.items()]
    rows.append({"stage": "kept", "documents": stats.get("kept", 0), "removed": "", "reason": ""})
    numbers = {"records in": sum(inputs.values()), "documents kept": stats.get("kept", 0)}
    numbers["records dropped"] = dropped
    numbers |= {f"language {lang}": n for lang, n in stats.get("langs", {}).items()}
    return published(result, "Extract", rows + funnel_rows(stats), numbers)
