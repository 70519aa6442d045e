"""Prefect entry point of the crawl step (pages over HTTP, plus books from a folder).

The only step that talks to the outside world, so the only one Prefect retries.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.states import State
from pyspark.sql import SparkSession

from tasks.common.spark import spark_session
from tasks.common.step import StepResult, run_step
from tasks.common.task import published, step_task
from tasks.config import CrawlConfig, LmforgeConfig
from tasks.crawl.crawler import crawl


def crawl_rows(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """The crawl's funnel: pages fetched, answered 2xx, and failed by error kind; news articles,
    items dropped by reason and feeds that could not be read."""
    rows = [
        {"stage": "fetched", "documents": stats.get("pages_fetched", 0), "reason": ""},
        {"stage": "ok (2xx)", "documents": stats.get("pages_ok", 0), "reason": ""},
    ]
    for kind, count in stats.get("errors", {}).items():
        rows.append({"stage": "error", "documents": count, "reason": kind})
    news = stats.get("news") or {}
    if news:
        rows.append(
            {"stage": "news articles", "documents": news.get("articles_ok", 0), "reason": ""}
        )
        for reason, count in news.get("items_dropped", {}).items():
            rows.append({"stage": "news item dropped", "documents": count, "reason": reason})
        for feed, reason in news.get("feed_errors", {}).items():
            rows.append({"stage": "news feed error", "documents": 0, "reason": f"{feed}: {reason}"})
    if isinstance(stats.get("books"), int):
        rows.append({"stage": "books", "documents": stats["books"], "reason": ""})
    return rows


def crawl_with_progress(spark: SparkSession, config: CrawlConfig, out: Path) -> dict[str, Any]:
    """Run the crawl, moving the `crawl-progress` artifact (pages fetched, percent of
    `crawl.max_pages`) after each level and to 100 when done."""
    artifact_id = create_progress_artifact(
        0.0, key="crawl-progress", description="pages fetched, percent of crawl.max_pages"
    )

    def on_progress(fetched: int, max_pages: int) -> None:
        update_progress_artifact(artifact_id, min(100.0, 100.0 * fetched / max(max_pages, 1)))

    stats = crawl(spark, config, out, on_progress)
    update_progress_artifact(artifact_id, 100.0)
    return stats


def network_failure(task: Any, task_run: Any, state: State) -> bool:
    """Retry the crawl only after a network error (connection, timeout, HTTP transfer), never
    after a mistake in the configuration or on disk."""
    error = state.result(raise_on_failure=False)
    on_disk = FileNotFoundError | FileExistsError | PermissionError | IsADirectoryError
    return isinstance(error, OSError) and not isinstance(error, on_disk | NotADirectoryError)


def resumable(config: LmforgeConfig) -> CrawlConfig:
    """`crawl` with WARC parts kept in `<work_dir>/crawl/.warc-parts` unless a folder is set:
    a failed attempt's output is removed, the finished files' parts survive it."""
    if config.crawl.warc_resume_dir:
        return config.crawl
    parts = Path(config.run.work_dir) / "crawl" / ".warc-parts"
    return replace(config.crawl, warc_resume_dir=str(parts))


@step_task("crawl", hours=6, retries=2, retry_delay_seconds=30, retry_condition_fn=network_failure)
def crawl_step(config: LmforgeConfig, snapshot: str = "") -> State:
    """Crawl the configured seeds (default: the embedded pydoc site) into `<work_dir>/crawl/`.
    A `snapshot` label (e.g. the ISO week) makes a new crawl of the same seeds."""
    spark = spark_session(config.spark)
    settings: dict[str, Any] = {"crawl": config.to_dict()["crawl"]}
    if snapshot:
        settings["snapshot"] = snapshot
    result: StepResult = run_step(
        config.run.work_dir,
        "crawl",
        settings,
        [],
        # pydoc_render.py runs as a script (by path, in its own interpreter): not imported
        [__name__, "tasks/crawl/pydoc_render.py"],
        lambda out: crawl_with_progress(spark, resumable(config), out),
    )
    stats = result.stats
    numbers = {
        "pages fetched": stats.get("pages_fetched", 0),
        "pages ok": stats.get("pages_ok", 0),
        "bytes": stats.get("bytes", 0),
        "depth reached": stats.get("depth_reached", 0),
        "books": stats.get("books", 0),
        "seconds": stats.get("seconds", 0.0),
    }
    return published(result, "Crawl", crawl_rows(stats), numbers)
