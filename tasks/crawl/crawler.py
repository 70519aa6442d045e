"""Breadth-first crawl as a Spark job, one job per depth level, plus the books folder.

Per level the driver holds only the frontier and the seen-set. The frontier goes into Spark
partitioned by host; executors fetch pages and extract links (`fetch.fetch_partition`); the
level's pages are appended to `out_dir/pages` and only the discovered links come back to the
driver to make the next level. With no `crawl.seeds`, the embedded pydoc site is generated,
served on 127.0.0.1 for the duration of the crawl, and crawled from its front page; the
driver serves it, so it suits local mode (on a cluster, give `crawl.seeds`).
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from tasks.config import CrawlConfig
from tasks.crawl.books import ingest_books
from tasks.crawl.fetch import fetch_partition, host_partition, normalise_url, url_host
from tasks.crawl.pydoc_site import generate_site, serve_site
from tasks.crawl.records import FETCHED_SCHEMA


def crawl(spark: SparkSession, config: CrawlConfig, out_dir: Path) -> dict[str, Any]:
    """Crawl the seeds (default: the embedded pydoc site) into `out_dir/pages`, ingest
    `books_dir` into `out_dir/books`; return the counts."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stats: dict[str, Any] = {}
    if config.seeds:
        stats.update(crawl_web(spark, config.seeds, config, out_dir / "pages"))
    else:
        with tempfile.TemporaryDirectory(prefix="lmforge-pydoc-site-") as folder:
            started = time.monotonic()
            manifest = generate_site(config.site_modules, Path(folder))
            stats["site"] = {
                "modules_rendered": len(manifest["rendered"]),
                "modules_skipped": len(manifest["skipped"]),
                "render_s": round(time.monotonic() - started, 2),
            }
            with serve_site(Path(folder)) as front_page:
                stats.update(crawl_web(spark, [front_page], config, out_dir / "pages"))
    stats["books"] = ingest_books(spark, config.books_dir, out_dir / "books")
    return stats


def crawl_web(
    spark: SparkSession, seeds: list[str], config: CrawlConfig, pages_dir: Path
) -> dict[str, Any]:
    """Breadth-first from `seeds` up to `max_depth` hops and `max_pages` fetches; each URL is
    fetched once. Allowed hosts: `crawl.allowed_hosts`, or the seeds' hosts when it is empty."""
    if config.max_pages < 1 or config.max_depth < 0:
        raise ValueError(
            f"crawl.max_pages must be >= 1 and crawl.max_depth >= 0, "
            f"got {config.max_pages} and {config.max_depth}"
        )
    frontier = sorted({_checked_seed(seed) for seed in seeds})
    allowed = frozenset(h.lower() for h in config.allowed_hosts) or frozenset(
        url_host(u) for u in frontier
    )
    seen: set[str] = set()
    totals: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    depth_reached = 0
    for depth in range(config.max_depth + 1):
        frontier = frontier[: config.max_pages - totals["pages_fetched"]]
        if not frontier:
            break
        seen.update(frontier)
        links = fetch_level(spark, frontier, depth, config, allowed, pages_dir, totals, errors)
        depth_reached = depth
        frontier = sorted(set(links) - seen)
    return {
        "pages_fetched": totals["pages_fetched"],
        "pages_ok": totals["pages_ok"],
        "bytes": totals["bytes"],
        "errors": dict(sorted(errors.items())),
        "depth_reached": depth_reached,
        "allowed_hosts": sorted(allowed),
    }


def fetch_level(
    spark: SparkSession,
    frontier: list[str],
    depth: int,
    config: CrawlConfig,
    allowed: frozenset[str],
    pages_dir: Path,
    totals: Counter[str],
    errors: Counter[str],
) -> list[str]:
    """Fetch one BFS level in Spark, append its pages to `pages_dir`, add to `totals` and
    `errors`; return the links found (the only data that comes back to the driver)."""
    hosts = {url_host(url) for url in frontier}
    partitions = max(1, min(config.partitions, len(hosts)))
    fetched = (
        spark.sparkContext.parallelize([(url_host(u), (u, depth)) for u in frontier], partitions)
        .partitionBy(partitions, host_partition)
        .values()
        .mapPartitions(partial(fetch_partition, config=config, allowed_hosts=allowed))
    )
    # Disk-backed, so the write and the summary below never fetch a URL a second time.
    level = spark.createDataFrame(fetched, FETCHED_SCHEMA).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        level.drop("links").write.mode("append").parquet(str(pages_dir))
        ok = F.col("error").isNull() & F.col("status").between(200, 299)
        summary = level.agg(
            F.count("*").alias("pages_fetched"),
            F.sum(ok.cast("long")).alias("pages_ok"),
            F.sum("bytes").alias("bytes"),
            F.collect_list(F.split("error", ":").getItem(0)).alias("error_kinds"),
            F.array_distinct(F.flatten(F.collect_list("links"))).alias("links"),
        ).first()
    finally:
        level.unpersist()
    totals.update({key: summary[key] for key in ("pages_fetched", "pages_ok", "bytes")})
    errors.update(summary["error_kinds"])
    return list(summary["links"])


def _checked_seed(seed: str) -> str:
    url = normalise_url(seed)
    if url is None:
        raise ValueError(f"crawl.seeds: {seed!r} is not an http(s) URL (e.g. https://host/path)")
    return url
