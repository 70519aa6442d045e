"""The crawl step's sources besides the web crawl and the books folder: book URLs, Common
Crawl WARC/WET files, existing dumps and social-media message dumps, each written to its own
folder of the crawl output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from tasks.config import CrawlConfig
from tasks.crawl.books import ingest_book_urls
from tasks.crawl.dumps import ingest_dumps
from tasks.crawl.social import ingest_social
from tasks.crawl.warc import ingest_warc


def ingest_other_sources(spark: SparkSession, config: CrawlConfig, out_dir: Path) -> dict[str, Any]:
    """Append `crawl.book_urls` to `out_dir/books`, write `crawl.warc_paths` to
    `out_dir/warc`, `crawl.dump_paths` to `out_dir/dumps` and `crawl.social_paths` to
    `out_dir/social`; return their counts (only for the sources configured)."""
    counts = {
        "book_urls": ingest_book_urls(spark, config, out_dir / "books"),
        "warc": ingest_warc(spark, config, out_dir / "warc"),
        "dumps": ingest_dumps(spark, config, out_dir / "dumps"),
        "social": ingest_social(spark, config, out_dir / "social"),
    }
    return {name: found for name, found in counts.items() if found}
