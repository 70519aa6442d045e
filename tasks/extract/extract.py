"""The extract step: crawled pages and books to document records, in Spark.

Each fetched page becomes a document (trafilatura main text, py3langid language) or a reject
with its `drop_reason`: 'fetch_error' (network error or non-2xx status), 'not_html',
'extraction_error' (the extractor failed), 'extraction_empty' (no main text found),
'too_short' (< `extract.min_chars`). Books are
language-identified and length-checked the same way. Every input is accounted for:
kept (`docs/`) + dropped (`dropped/`) = pages + books.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from tasks.config import ExtractConfig
from tasks.crawl.fetch import HTML_TYPES
from tasks.crawl.records import DOCUMENT_SCHEMA, document_id
from tasks.extract.main_text import identify_language, main_text

# A document record plus why it was dropped (null when kept).
JUDGED_SCHEMA = StructType(
    DOCUMENT_SCHEMA.fields + [StructField("drop_reason", StringType(), True)]
)


def page_meta(page: Row) -> dict[str, str]:
    """Crawl facts worth keeping with the document, as strings."""
    facts = {
        "host": page["host"],
        "depth": page["depth"],
        "status": page["status"],
        "content_type": page["content_type"],
        "fetch_error": page["error"],
    }
    return {key: str(value) for key, value in facts.items() if value is not None}


def page_drop_reason(page: Row) -> str | None:
    """Why a page cannot yield text before extraction is tried, or None."""
    status = page["status"]
    if page["error"] is not None or status is None or not 200 <= status < 300:
        return "fetch_error"
    if page["html"] is None or (page["content_type"] or "text/html") not in HTML_TYPES:
        return "not_html"
    return None


def judge_text(text: str, config: ExtractConfig) -> tuple[str | None, float | None, str | None]:
    """(lang, lang_score, drop_reason) of a text: 'too_short' below `min_chars`."""
    if len(text.strip()) < config.min_chars:
        return None, None, "too_short"
    lang, score = identify_language(text)
    return lang, score, None


def page_text(page: Row, config: ExtractConfig, meta: dict[str, str]) -> tuple:
    """(title, text, drop_reason) of a page; an extractor failure is noted in `meta`."""
    reason = page_drop_reason(page)
    if reason is not None:
        return None, None, reason
    try:
        title, text = main_text(page["html"], page["url"], config)
    except Exception as err:  # one page that breaks the extractor must not stop the job
        meta["extraction_error"] = f"{type(err).__name__}: {err}"[:300]
        return None, None, "extraction_error"
    return title, text, None if text else "extraction_empty"


def judge_pages(pages: Iterable[Row], config: ExtractConfig) -> Iterator[tuple]:
    """Pages to rows in `JUDGED_SCHEMA` order, one per page."""
    for page in pages:
        url, meta = page["url"], page_meta(page)
        title, text, reason = page_text(page, config, meta)
        lang, score = None, None
        if reason is None:
            lang, score, reason = judge_text(text, config)
        doc = (document_id(url), url, "web", title, text, lang, score, page["fetched_at"], meta)
        yield (*doc, reason)


def judge_books(books: Iterable[Row], config: ExtractConfig) -> Iterator[tuple]:
    """Book records to rows in `JUDGED_SCHEMA` order, with language and length checked."""
    for book in books:
        record = book.asDict()
        lang, score, reason = judge_text(record["text"] or "", config)
        record.update(lang=lang, lang_score=score, drop_reason=reason)
        yield tuple(record[field.name] for field in JUDGED_SCHEMA.fields)


def extract_documents(
    spark: SparkSession, crawl_dir: Path, config: ExtractConfig, out_dir: Path
) -> dict[str, Any]:
    """Write `out_dir/docs` (kept documents, books included) and `out_dir/dropped` (with
    `drop_reason`) from the crawl output in `crawl_dir`; return the counts."""
    pages_dir, books_dir = crawl_dir / "pages", crawl_dir / "books"
    if not pages_dir.is_dir() and not books_dir.is_dir():
        raise FileNotFoundError(
            f"extract: {crawl_dir} has neither pages/ nor books/; run the crawl step first"
        )
    judged: list[DataFrame] = []
    counts = {"input_pages": 0, "input_books": 0}
    if pages_dir.is_dir():
        pages = spark.read.parquet(str(pages_dir))
        counts["input_pages"] = pages.count()
        # Spread pages out: a crawl level of one host arrives as one partition.
        pages = pages.repartition(max(1, config.partitions))
        rows = pages.rdd.mapPartitions(partial(judge_pages, config=config))
        judged.append(spark.createDataFrame(rows, JUDGED_SCHEMA))
    if books_dir.is_dir():
        books = spark.read.parquet(str(books_dir))
        counts["input_books"] = books.count()
        rows = books.rdd.mapPartitions(partial(judge_books, config=config))
        judged.append(spark.createDataFrame(rows, JUDGED_SCHEMA))
    everything = judged[0]
    for frame in judged[1:]:
        everything = everything.unionByName(frame)
    # Disk-backed so the two writes and the tally run trafilatura once per page.
    everything = everything.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        kept = everything.where(F.col("drop_reason").isNull()).drop("drop_reason")
        kept.orderBy("id").write.parquet(str(out_dir / "docs"))
        dropped = everything.where(F.col("drop_reason").isNotNull())
        dropped.orderBy("id").write.parquet(str(out_dir / "dropped"))
        outcomes = everything.groupBy("drop_reason", "lang").count().collect()
    finally:
        everything.unpersist()
    langs, reasons = Counter(), Counter()
    for row in outcomes:
        if row["drop_reason"] is None:
            langs[row["lang"]] += row["count"]
        else:
            reasons[row["drop_reason"]] += row["count"]
    n_kept = sum(langs.values())
    stats: dict[str, Any] = {**counts, "kept": n_kept, "langs": dict(sorted(langs.items()))}
    stats.update({f"dropped_{reason}": n for reason, n in sorted(reasons.items())})
    if n_kept + sum(reasons.values()) != counts["input_pages"] + counts["input_books"]:
        raise RuntimeError(f"extract lost documents: {stats}")
    return stats
