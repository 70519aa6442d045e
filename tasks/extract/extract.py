"""The extract step: crawled pages, WARC/WET records, books and dumps to documents, in Spark.

Each fetched page or WARC response becomes a document (trafilatura main text, py3langid
language; a text/plain page is its own text) or a reject with its `drop_reason`:
'fetch_error' (network error or non-2xx status), 'not_html' (another content type),
'extraction_error' (the extractor failed), 'extraction_timeout' (longer than
`extract.time_limit_s`), 'extraction_empty' (no main text found), 'too_short'
(< `extract.min_chars`), 'lang_not_allowed' / 'lang_score_low' (`extract.allowed_langs`,
`extract.min_lang_score`). WET records, books and dumps are language-identified and
length-checked the same way. Every input is accounted for: kept (`docs/`) + dropped
(`dropped/`) = the records of every crawl output folder.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from tasks.common.spark import session_conf
from tasks.config import ExtractConfig
from tasks.crawl.fetch import HTML_TYPES
from tasks.crawl.records import DOCUMENT_SCHEMA, document_id
from tasks.extract.main_text import identify_language, main_text
from tasks.extract.time_limit import TimeLimitExceeded, call_with_time_limit

TEXT_PAGE_TYPES = HTML_TYPES | {"text/plain"}
# A document record plus why it was dropped (null when kept), in Spark and Arrow terms.
JUDGED_SCHEMA = StructType(
    DOCUMENT_SCHEMA.fields + [StructField("drop_reason", StringType(), True)]
)
JUDGED_NAMES = JUDGED_SCHEMA.names
Record = Mapping[str, Any]  # one input record: a dict from Arrow (tests may pass a Row)
JUDGED_ARROW = pa.schema(
    [(name, pa.string()) for name in JUDGED_NAMES[:5]]
    + [("lang", pa.string()), ("lang_score", pa.float64()), ("fetched_at", pa.string())]
    + [("meta", pa.map_(pa.string(), pa.string())), ("drop_reason", pa.string())]
)


def page_meta(page: Record) -> dict[str, str]:
    """Crawl facts worth keeping with the document, as strings."""
    facts = {
        "host": page["host"],
        "depth": page["depth"],
        "status": page["status"],
        "content_type": page["content_type"],
        "fetch_error": page["error"],
    }
    return {key: str(value) for key, value in facts.items() if value is not None}


def page_drop_reason(page: Record) -> str | None:
    """Why a page cannot yield text before extraction is tried, or None."""
    status = page["status"]
    if page["error"] is not None or status is None or not 200 <= status < 300:
        return "fetch_error"
    if page["html"] is None or (page["content_type"] or "text/html") not in TEXT_PAGE_TYPES:
        return "not_html"
    return None


def judge_text(text: str, config: ExtractConfig) -> tuple[str | None, float | None, str | None]:
    """(lang, lang_score, drop_reason) of a text: 'too_short' below `min_chars`,
    'lang_not_allowed' outside `allowed_langs`, 'lang_score_low' below `min_lang_score`."""
    if len(text.strip()) < config.min_chars:
        return None, None, "too_short"
    lang, score = identify_language(text)
    if config.allowed_langs and lang not in config.allowed_langs:
        return lang, score, "lang_not_allowed"
    if score < config.min_lang_score:
        return lang, score, "lang_score_low"
    return lang, score, None


def page_text(page: Record, config: ExtractConfig, meta: dict[str, str]) -> tuple:
    """(title, text, drop_reason) of a page; extractor failures and metadata go to `meta`.
    A plain-text page is its own text."""
    reason = page_drop_reason(page)
    if reason is not None:
        return None, None, reason
    if page["content_type"] == "text/plain":
        return None, page["html"].strip(), None
    try:
        found = call_with_time_limit(
            config.time_limit_s, main_text, page["html"], page["url"], config
        )
    except TimeLimitExceeded as err:
        meta["extraction_error"] = f"timeout: {err}"
        return None, None, "extraction_timeout"
    except Exception as err:  # one page that breaks the extractor must not stop the job
        meta["extraction_error"] = f"{type(err).__name__}: {err}"[:300]
        return None, None, "extraction_error"
    if found.date:
        meta["date"] = found.date
    if found.url and found.url != page["url"]:
        meta["canonical_url"] = found.url
    return found.title, found.text, None if found.text else "extraction_empty"


def judge_pages(pages: Iterable[Record], config: ExtractConfig) -> Iterator[tuple]:
    """Crawled pages to rows in `JUDGED_SCHEMA` order, one per page."""
    for page in pages:
        url, meta = page["url"], page_meta(page)
        title, text, reason = page_text(page, config, meta)
        lang, score = None, None
        if reason is None:
            lang, score, reason = judge_text(text, config)
        doc = (document_id(url), url, "web", title, text, lang, score, page["fetched_at"], meta)
        yield (*doc, reason)


def judge_warc(records: Iterable[Record], config: ExtractConfig) -> Iterator[tuple]:
    """WARC/WET records (`WARC_SCHEMA`) to rows in `JUDGED_SCHEMA` order: a WARC response's
    HTML is extracted like a crawled page, a WET record's text is taken as it is."""
    for record in records:
        meta = dict(record["meta"] or {})
        if record["source"] == "wet":
            title, text, reason = None, record["text"] or "", None
        else:
            title, text, reason = page_text(record, config, meta)
        lang, score = None, None
        if reason is None:
            lang, score, reason = judge_text(text, config)
        doc = (record["id"], record["url"], record["source"], title, text, lang, score)
        yield (*doc, record["fetched_at"], meta, reason)


def judge_documents(documents: Iterable[Record], config: ExtractConfig) -> Iterator[tuple]:
    """Document records (books, dumps) to rows in `JUDGED_SCHEMA` order, with language and
    length checked."""
    for document in documents:
        record = dict(document)
        if (record["meta"] or {}).get("fetch_error"):  # a book URL that could not be fetched
            lang, score, reason = None, None, "fetch_error"
        else:
            lang, score, reason = judge_text(record["text"] or "", config)
        record.update(lang=lang, lang_score=score, drop_reason=reason)
        yield tuple(record[field.name] for field in JUDGED_SCHEMA.fields)


def judged_batches(
    batches: Iterable[pa.RecordBatch], judge: Callable, config: ExtractConfig
) -> Iterator[pa.RecordBatch]:
    """`judge` applied to Arrow batches of input records (`mapInArrow`): records arrive as
    dicts (map columns as dicts) and leave as `JUDGED_SCHEMA` batches."""
    for batch in batches:
        records = batch.to_pylist()
        for record in records:
            if record.get("meta") is not None:
                record["meta"] = dict(record["meta"])
        rows = [dict(zip(JUDGED_NAMES, row, strict=True)) for row in judge(records, config)]
        yield pa.RecordBatch.from_pylist(rows, schema=JUDGED_ARROW)


# Batch sizes while this step runs. Arrow's default batch is 10,000 records and Parquet's
# vectorised reader reads 4,096 rows at a time: of HTML pages (~200 kB each in the benchmark),
# gigabytes in one Python worker, and a reader buffer the JVM heap cannot hold.
BATCH_CONF = {
    "spark.sql.execution.arrow.maxRecordsPerBatch": "200",  # ~40 MB of pages per batch
    "spark.sql.parquet.columnarReaderBatchSize": "256",
}


def step_conf(config: ExtractConfig) -> dict[str, str]:
    """The Spark settings this step runs under: `BATCH_CONF`, and scan splits of
    `extract.split_mb`."""
    if not config.split_mb > 0:
        raise ValueError(f"extract.split_mb must be > 0 (MB per scan task), got {config.split_mb}")
    return {**BATCH_CONF, "spark.sql.files.maxPartitionBytes": str(int(config.split_mb * 2**20))}


# Crawl output folders and how their records are judged.
JUDGES = {
    "pages": judge_pages,
    "warc": judge_warc,
    "books": judge_documents,
    "dumps": judge_documents,
}


def scan_task_sizes(records: DataFrame) -> list[int]:
    """Records per non-empty task of Spark's scan of `records`, counted from the Parquet
    footers (no page is read)."""
    tasks = records.select(F.spark_partition_id().alias("task")).groupBy("task").count()
    return [row["count"] for row in tasks.collect()]


def splits_evenly(task_sizes: list[int], cores: int) -> bool:
    """True when scan tasks of these sizes already share the work out evenly, so shuffling
    every record's HTML to spread it would buy nothing: at least `cores` tasks, none with more
    than total / (2 x cores) of the records. Spark hands out the larger splits first, so the
    cores then finish within about one task of each other. One core has nothing to share."""
    if cores <= 1:
        return True
    return len(task_sizes) >= cores and max(task_sizes) <= sum(task_sizes) / (2 * cores)


def extract_documents(
    spark: SparkSession, crawl_dir: Path, config: ExtractConfig, out_dir: Path
) -> dict[str, Any]:
    """Write `out_dir/docs` (kept documents, books included) and `out_dir/dropped` (with
    `drop_reason`) from the crawl output in `crawl_dir`; return the counts."""
    folders = [name for name in JUDGES if (crawl_dir / name).is_dir()]
    if not folders:
        raise FileNotFoundError(
            f"extract: {crawl_dir} has none of {', '.join(JUDGES)}/; run the crawl step first"
        )
    with session_conf(spark, step_conf(config)):
        return _extract(spark, crawl_dir, folders, config, out_dir)


def _extract(
    spark: SparkSession, crawl_dir: Path, folders: list[str], config: ExtractConfig, out_dir: Path
) -> dict[str, Any]:
    judged: list[DataFrame] = []
    counts = {f"input_{name}": 0 for name in JUDGES}
    for name in folders:
        records = spark.read.parquet(str(crawl_dir / name))
        task_sizes = scan_task_sizes(records)
        counts[f"input_{name}"] = sum(task_sizes)
        if not splits_evenly(task_sizes, spark.sparkContext.defaultParallelism):
            # Spread records out (a crawl level of one host arrives as one partition) by a hash
            # of their id (pages: URL; all of a dump's records share its URL): unlike
            # round-robin, this needs no sort of the whole HTML first.
            key = "id" if "id" in records.columns else "url"
            records = records.repartition(max(1, config.partitions), F.col(key))
        # Arrow batches both ways: no per-row pickling and schema checks between JVM and Python.
        judge = partial(judged_batches, judge=JUDGES[name], config=config)
        judged.append(records.mapInArrow(judge, JUDGED_SCHEMA))
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
    if n_kept + sum(reasons.values()) != sum(counts.values()):
        raise RuntimeError(f"extract lost documents: {stats}")
    return stats
