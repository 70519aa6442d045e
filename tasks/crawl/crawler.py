"""Breadth-first crawl as a Spark job, one job per depth level, plus the other sources.

Per level the driver holds only the frontier and the seen-set. The frontier goes into Spark
partitioned by host (joined with the previous crawl's validators on a re-crawl); executors
fetch pages and extract links (`worker.fetch_partition`); the level's pages are appended to
`out_dir/pages` and only the discovered links come back to the driver to make the next
level. Every URL met ends as one row: fetched, or with the reason it was not ('budget:
max_depth', 'scope: ...'). With no `crawl.seeds`, `crawl.sitemaps` or `crawl.feeds`, the
embedded pydoc site is generated, served on 127.0.0.1 (which is then allowed) for the duration
of the crawl, and crawled from its front page; the driver serves it, so it suits local mode.
News (`crawl.feeds`, a news sitemap's entries, the embedded site's feed with
`crawl.site_feed_items`) is read after the web crawl into `out_dir/news` (`feeds.ingest_news`).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from tasks.config import CrawlConfig
from tasks.crawl.books import ingest_books
from tasks.crawl.feeds import FeedItem, ingest_news
from tasks.crawl.frontier import Frontier
from tasks.crawl.links import host_partition, normalise_url, url_host
from tasks.crawl.other_sources import ingest_other_sources
from tasks.crawl.pydoc_site import SITE_FEED, generate_site, serve_site, write_feed
from tasks.crawl.records import FETCHED_SCHEMA, ROW_GROUP_BYTES
from tasks.crawl.scope import Scope, crawl_scope
from tasks.crawl.sitemap import sitemap_urls
from tasks.crawl.worker import fetch_partition, skipped_row

OK_OUTCOMES = ("ok", "not_modified")
PREVIOUS = ["status", "html", "content_type", "etag", "last_modified"]
FRONTIER_SCHEMA = "url string, " + ", ".join(
    f"prev_{c} {'int' if c == 'status' else 'string'}" for c in PREVIOUS
)


def crawl(
    spark: SparkSession,
    config: CrawlConfig,
    out_dir: Path,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Crawl the seeds and sitemaps (default, without feeds too: the embedded pydoc site) into
    `out_dir/pages`, the feeds' new items into `out_dir/news`, ingest books and the other
    sources; return the counts. `on_progress(pages fetched,
    max_pages)` is called after each level."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stats: dict[str, Any] = {}
    news: list[FeedItem] = []  # a news sitemap's entries, crawled with the feeds
    if config.seeds or config.sitemaps:
        stats.update(crawl_web(spark, config.seeds, config, out_dir / "pages", on_progress, news))
        stats.update(_news(spark, config, out_dir, news))
    elif config.feeds:  # news only: no web crawl, no embedded site
        stats.update(_news(spark, config, out_dir, news))
    else:
        with tempfile.TemporaryDirectory(prefix="lmforge-pydoc-site-") as folder:
            started = time.monotonic()
            manifest = generate_site(config.site_modules, Path(folder))
            stats["site"] = {
                "modules_rendered": len(manifest["rendered"]),
                "modules_skipped": len(manifest["skipped"]),
                "render_s": round(time.monotonic() - started, 2),
            }
            local = dataclasses.replace(
                config, allow_private_hosts=[*config.allow_private_hosts, "127.0.0.1"]
            )
            with serve_site(Path(folder)) as front_page:
                stats.update(crawl_web(spark, [front_page], local, out_dir / "pages", on_progress))
                if config.site_feed_items:
                    modules = manifest["rendered"]
                    write_feed(Path(folder), front_page, modules, config.site_feed_items)
                    site_feed = f"{front_page}{SITE_FEED}"
                    local = dataclasses.replace(local, feeds=[*config.feeds, site_feed])
                stats.update(_news(spark, local, out_dir, news))
    stats["books"] = ingest_books(spark, config.books_dir, out_dir / "books")
    stats.update(ingest_other_sources(spark, config, out_dir))
    return stats


def _news(
    spark: SparkSession, config: CrawlConfig, out_dir: Path, news: list[FeedItem]
) -> dict[str, Any]:
    """`crawl.feeds` and a news sitemap's items into `out_dir/news`: {"news": counts}, or {}."""
    deadline = time.time() + config.time_budget_s
    found = ingest_news(spark, config, out_dir / "news", deadline, news)
    return {"news": found} if found else {}


def crawl_web(
    spark: SparkSession,
    seeds: list[str],
    config: CrawlConfig,
    pages_dir: Path,
    on_progress: Callable[[int, int], None] | None = None,
    news: list[FeedItem] | None = None,
) -> dict[str, Any]:
    """Breadth-first from `seeds` and `crawl.sitemaps` within the crawl's limits and time
    budget; each URL is fetched once. Returns counts by outcome. A news sitemap's entries go
    to `news` when it is given, not to the crawl. (`config`'s limits were checked when it was
    built: CrawlConfig.check; `seeds` are checked here.)"""
    started = time.time()
    deadline = started + config.time_budget_s
    level = sorted({_checked_seed(seed) for seed in seeds})
    stats: dict[str, Any] = {}
    if config.sitemaps:
        listed, stats["sitemaps"] = sitemap_urls(config.sitemaps, config, deadline, news)
        level = sorted({*level, *listed})
    scope = crawl_scope(config, level)
    previous = previous_pages(spark, config.previous_output)
    frontier = Frontier(config, scope)
    refused: list[dict[str, Any]] = []
    outcomes: Counter[str] = Counter()
    totals: Counter[str] = Counter()  # bytes, truncated
    depth_reached = 0
    for depth in range(config.max_depth + 1):
        if time.time() >= deadline:
            refused += [skipped_row(u, depth, r) for u, r in frontier.refuse(level, "budget: time")]
            level = []
            break
        admitted, turned_away = frontier.admit(level)
        refused += [skipped_row(url, depth, reason) for url, reason in turned_away]
        if not admitted:
            level = []
            break
        level = fetch_level(
            spark, admitted, depth, config, scope, previous, deadline, pages_dir, outcomes, totals
        )
        depth_reached = depth
        if on_progress is not None:
            on_progress(frontier.admitted, config.max_pages)
    leftover = "budget: time" if time.time() >= deadline else "budget: max_depth"
    refused += [skipped_row(u, depth_reached + 1, r) for u, r in frontier.refuse(level, leftover)]
    rows = spark.createDataFrame(refused, FETCHED_SCHEMA).drop("links")
    rows.write.mode("append").parquet(str(pages_dir))
    outcomes.update(row["outcome"] for row in refused)
    return {
        **stats,
        "urls": outcomes.total(),
        "pages_fetched": frontier.admitted,
        "pages_ok": outcomes["ok"] + outcomes["not_modified"],
        "not_modified": outcomes["not_modified"],
        "bytes": totals["bytes"],
        "truncated": totals["truncated"],
        "errors": dict(sorted((k, n) for k, n in outcomes.items() if k not in OK_OUTCOMES)),
        "depth_reached": depth_reached,
        "allowed_hosts": sorted(scope.domains),
        "crawl_s": round(time.time() - started, 2),
    }


def previous_pages(spark: SparkSession, previous_output: str) -> DataFrame | None:
    """The previous crawl's usable pages with their validators, columns `prev_*`; None when
    no previous crawl is configured or it read feeds only (no pages to revalidate)."""
    if not previous_output:
        return None
    folder = Path(previous_output) / "pages"
    if not folder.is_dir():
        if (Path(previous_output) / "news").is_dir():
            return None
        raise ValueError(
            f"crawl.previous_output: {folder} does not exist; give an earlier crawl step "
            "folder (<work_dir>/crawl/<fingerprint>) or '' for none"
        )
    pages = spark.read.parquet(str(folder))
    missing = {"etag", "last_modified"} - set(pages.columns)
    if missing:
        raise ValueError(f"crawl.previous_output: {folder} lacks {sorted(missing)}; re-crawl it")
    usable = pages.where("html IS NOT NULL AND status BETWEEN 200 AND 299")
    return usable.select("url", *[F.col(c).alias(f"prev_{c}") for c in PREVIOUS]).dropDuplicates(
        ["url"]
    )


def fetch_level(
    spark: SparkSession,
    urls: list[str],
    depth: int,
    config: CrawlConfig,
    scope: Scope,
    previous: DataFrame | None,
    deadline: float,
    pages_dir: Path,
    outcomes: Counter[str],
    totals: Counter[str],
) -> list[str]:
    """Fetch one BFS level in Spark, append its pages to `pages_dir`, add to `outcomes` and
    `totals` (bytes, truncated); return the links found, the only data back to the driver."""
    frontier = spark.createDataFrame([(u, *[None] * len(PREVIOUS)) for u in urls], FRONTIER_SCHEMA)
    if previous is not None:
        frontier = frontier.select("url").join(previous, "url", "left")
    partitions = max(1, min(config.partitions, len({url_host(u) for u in urls})))
    fetch = partial(fetch_partition, depth=depth, config=config, in_scope=scope, deadline=deadline)
    fetched = (
        frontier.rdd.map(lambda row: (url_host(row["url"]), row))
        .partitionBy(partitions, host_partition)
        .values()
        .mapPartitions(fetch)
    )
    # Disk-backed, so the write and the summary below never fetch a URL a second time.
    level = spark.createDataFrame(fetched, FETCHED_SCHEMA).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        writer = level.drop("links").write.option("parquet.block.size", ROW_GROUP_BYTES)
        writer.mode("append").parquet(str(pages_dir))
        counts = level.groupBy("outcome").agg(
            F.count("*").alias("n"),
            F.sum("bytes").alias("bytes"),
            F.sum(F.col("truncated").cast("long")).alias("truncated"),
        )
        for row in counts.collect():
            outcomes[row["outcome"]] += row["n"]
            totals.update(bytes=row["bytes"], truncated=row["truncated"])
        links = level.select(F.explode("links").alias("link")).distinct().collect()
    finally:
        level.unpersist()
    return sorted(row["link"] for row in links)


def _checked_seed(seed: str) -> str:
    url = normalise_url(seed)
    if url is None:
        raise ValueError(f"crawl.seeds: {seed!r} is not an http(s) URL (e.g. https://host/path)")
    return url
