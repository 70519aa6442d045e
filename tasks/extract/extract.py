"""The extract step: crawled pages, WARC/WET records, books and dumps to documents, in Spark.

Each fetched page or WARC response becomes a document (trafilatura main text, py3langid
language; a text/plain page is its own text) or a reject with its `drop_reason`:
'fetch_error' (network error or non-2xx status), 'not_html' (another content type),
'extraction_error' (the extractor failed), 'extraction_timeout' (longer than
`extract.time_limit_s`), 'extraction_empty' (no main text found), 'too_short'
(< `extract.min_chars`), 'lang_not_allowed' / 'lang_score_low' (`extract.allowed_langs`,
`extract.min_lang_score`). WET records, books, dumps and social messages are
language-identified and length-checked the same way (messages against
`extract.social_min_chars`: 1 by default, curate judges them). Every input is accounted
for: kept (`docs/`) + dropped (`dropped/`) = the records of every crawl output folder.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyspark import TaskContext
from pyspark.sql import SparkSession
from pyspark.sql.types import DataType, DoubleType, MapType, StringType, StructType

from tasks.config import ExtractConfig
from tasks.crawl.fetch import HTML_TYPES
from tasks.crawl.records import DOCUMENT_SCHEMA, document_id
from tasks.extract.main_text import identify_language, main_text
from tasks.extract.time_limit import TimeLimitExceeded, call_with_time_limit

TEXT_PAGE_TYPES = HTML_TYPES | {"text/plain"}
Record = Mapping[str, Any]  # one input record: a dict from Arrow (tests may pass a Row)
ARROW_TYPES: dict[type[DataType], pa.DataType] = {
    StringType: pa.string(),
    DoubleType: pa.float64(),
}


def arrow_type(spark_type: DataType) -> pa.DataType:
    """The Arrow type of a `DOCUMENT_SCHEMA` column type (strings, doubles, string maps)."""
    if isinstance(spark_type, MapType):
        return pa.map_(arrow_type(spark_type.keyType), arrow_type(spark_type.valueType))
    return ARROW_TYPES[type(spark_type)]


def arrow_schema(schema: StructType) -> pa.Schema:
    """`schema` as the Arrow schema the tasks write: its columns, in order, all nullable."""
    return pa.schema([(field.name, arrow_type(field.dataType)) for field in schema.fields])


# A document record (`DOCUMENT_SCHEMA`'s columns) plus why it was dropped (null when kept),
# as the tasks write it; a judge yields each record as a dict keyed by `JUDGED_NAMES`.
JUDGED_ARROW = arrow_schema(DOCUMENT_SCHEMA).append(pa.field("drop_reason", pa.string()))
JUDGED_NAMES = JUDGED_ARROW.names
JUDGED_KEYS = set(JUDGED_NAMES)


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


def judge_text(
    text: str, config: ExtractConfig, min_chars: int | None = None
) -> tuple[str | None, float | None, str | None]:
    """(lang, lang_score, drop_reason) of a text: 'too_short' below `min_chars` (default
    `config.min_chars`), 'lang_not_allowed' outside `allowed_langs`, 'lang_score_low' below
    `min_lang_score`."""
    if len(text.strip()) < (config.min_chars if min_chars is None else min_chars):
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


def judge_pages(pages: Iterable[Record], config: ExtractConfig) -> Iterator[dict[str, Any]]:
    """Crawled pages to judged records, one per page."""
    for page in pages:
        url, meta = page["url"], page_meta(page)
        title, text, reason = page_text(page, config, meta)
        lang, score = None, None
        if reason is None:
            lang, score, reason = judge_text(text, config)
        yield {
            "id": document_id(url),
            "url": url,
            "source": "web",
            "title": title,
            "text": text,
            "lang": lang,
            "lang_score": score,
            "fetched_at": page["fetched_at"],
            "meta": meta,
            "drop_reason": reason,
        }


def judge_warc(records: Iterable[Record], config: ExtractConfig) -> Iterator[dict[str, Any]]:
    """WARC/WET records (`WARC_SCHEMA`) to judged records: a WARC response's
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
        yield {
            "id": record["id"],
            "url": record["url"],
            "source": record["source"],
            "title": title,
            "text": text,
            "lang": lang,
            "lang_score": score,
            "fetched_at": record["fetched_at"],
            "meta": meta,
            "drop_reason": reason,
        }


def judge_documents(documents: Iterable[Record], config: ExtractConfig) -> Iterator[dict[str, Any]]:
    """Document records (books, dumps, social) to judged records, language and length checked
    (a social message against `extract.social_min_chars`)."""
    for document in documents:
        record = dict(document)
        if (record["meta"] or {}).get("fetch_error"):  # a book URL that could not be fetched
            lang, score, reason = None, None, "fetch_error"
        else:
            social = record["source"] == "social"
            floor = config.social_min_chars if social else config.min_chars
            lang, score, reason = judge_text(record["text"] or "", config, floor)
        record.update(lang=lang, lang_score=score, drop_reason=reason)
        yield {name: record[name] for name in JUDGED_NAMES}


def judged_batches(
    batches: Iterable[pa.RecordBatch], judge: Callable, config: ExtractConfig
) -> Iterator[pa.RecordBatch]:
    """`judge` applied to Arrow batches of input records: records arrive as dicts (map columns
    as dicts) and leave as `JUDGED_ARROW` batches (the judged dicts must have its columns)."""
    for batch in batches:
        records = batch.to_pylist()
        for record in records:
            if record.get("meta") is not None:
                record["meta"] = dict(record["meta"])
        rows = list(judge(records, config))
        for row in rows:
            if row.keys() != JUDGED_KEYS:
                raise ValueError(f"a judged record has keys {sorted(row)}, not {JUDGED_NAMES}")
        yield pa.RecordBatch.from_pylist(rows, schema=JUDGED_ARROW)


# Records per Arrow batch a judge is handed: ~40 MB of HTML pages (~200 kB each in the
# benchmark). Reading a row group also holds its column chunks: ~8 MB for crawled pages and
# WARC records (ROW_GROUP_BYTES), up to Spark's default 128 MB for books and dumps.
BATCH_ROWS = 200

# Crawl output folders and how their records are judged.
JUDGES = {
    "pages": judge_pages,
    "warc": judge_warc,
    "news": judge_warc,
    "books": judge_documents,
    "dumps": judge_documents,
    "social": judge_documents,
}
KEPT_ARROW = JUDGED_ARROW.remove(JUDGED_ARROW.get_field_index("drop_reason"))


class WorkItem(NamedTuple):
    """One Spark task's input: records [start, stop) of one row group of one Parquet file of
    the crawl output folder `folder`."""

    folder: str
    path: str
    row_group: int
    start: int
    stop: int


def parquet_files(folder: Path) -> list[Path]:
    """The data files of a Parquet folder as Spark reads them: `*.parquet` below it, names
    starting with '.' or '_' (Spark's and Hadoop's hidden files) skipped; sorted."""
    return sorted(
        path
        for path in folder.rglob("*.parquet")
        if not any(part.startswith((".", "_")) for part in path.relative_to(folder).parts)
    )


def plan_work(
    crawl_dir: Path, folders: list[str], pieces: int
) -> tuple[list[WorkItem], dict[str, int]]:
    """The work items of a crawl output and its record counts per folder, from the Parquet
    footers (no record is read). A row group is one item, cut in slices when it holds more than
    1/`pieces` of all records, so at least `pieces` items share out a small input. Largest
    first: the cores then end within about one small item of each other."""
    groups: list[tuple[str, str, int, int]] = []
    counts = {f"input_{name}": 0 for name in JUDGES}
    for name in folders:
        for path in parquet_files(crawl_dir / name):
            try:
                meta = pq.read_metadata(path)
            except (OSError, pa.ArrowException) as err:
                raise ValueError(
                    f"extract: {path} is not a readable Parquet file ({err}); re-run the crawl step"
                ) from err
            for group in range(meta.num_row_groups):
                rows = meta.row_group(group).num_rows
                counts[f"input_{name}"] += rows
                if rows:
                    groups.append((name, str(path), group, rows))
    most = max(1, math.ceil(sum(counts.values()) / max(1, pieces)))
    items = [
        WorkItem(name, path, group, start, min(start + most, rows))
        for name, path, group, rows in groups
        for start in range(0, rows, most)
    ]
    items.sort(key=lambda item: item.start - item.stop)  # stable: input order among equals
    return items, counts


def read_item(item: WorkItem) -> Iterator[pa.RecordBatch]:
    """The records of a work item, in Arrow batches of at most `BATCH_ROWS`."""
    seen = 0
    file = pq.ParquetFile(item.path)
    for batch in file.iter_batches(batch_size=BATCH_ROWS, row_groups=[item.row_group]):
        low, high = max(item.start - seen, 0), min(item.stop - seen, batch.num_rows)
        if low < high:
            yield batch.slice(low, high - low)
        seen += batch.num_rows
        if seen >= item.stop:
            return


class PartFile:
    """One output part file of a task attempt: written under a hidden name (which readers
    skip) and renamed into place when the task has written everything; none when no row
    comes. An earlier attempt's file is removed first: a retry can judge differently (time
    limits), and its records must not be counted twice."""

    def __init__(self, folder: Path, name: str, schema: pa.Schema, attempt: int) -> None:
        self.path, self.schema = folder / name, schema
        self.tmp = folder / f".{name}.attempt-{attempt}.tmp"
        self.writer: pq.ParquetWriter | None = None
        self.path.unlink(missing_ok=True)

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            if self.writer is None:
                self.writer = pq.ParquetWriter(self.tmp, self.schema)
            self.writer.write_table(table)

    def close(self) -> None:
        """Publish the file (rename into place)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
            os.replace(self.tmp, self.path)

    def abort(self) -> None:
        """Remove what this attempt wrote, published or not."""
        try:
            if self.writer is not None:
                self.writer.close()
        finally:
            self.writer = None
            self.tmp.unlink(missing_ok=True)
            self.path.unlink(missing_ok=True)


def judge_item(item: WorkItem, index: int, config: ExtractConfig, out_dir: str) -> dict[str, int]:
    """Judge one work item (in a Spark task): its kept documents to `docs/part-<index>.parquet`,
    its dropped ones to `dropped/part-<index>.parquet`; returns its tally ('lang:<code>' per
    kept language, 'drop:<reason>' per reason)."""
    context = TaskContext.get()
    attempt = context.attemptNumber() if context is not None else 0
    name = f"part-{index:05d}.parquet"
    kept = PartFile(Path(out_dir, "docs"), name, KEPT_ARROW, attempt)
    dropped = PartFile(Path(out_dir, "dropped"), name, JUDGED_ARROW, attempt)
    tally: Counter = Counter()
    try:
        for batch in judged_batches(read_item(item), JUDGES[item.folder], config):
            judged = pa.Table.from_batches([batch])
            reasons = judged.column("drop_reason")
            kept.write(judged.filter(pc.is_null(reasons)).drop_columns(["drop_reason"]))
            dropped.write(judged.filter(pc.is_valid(reasons)))
            for lang, reason in zip(judged["lang"].to_pylist(), reasons.to_pylist(), strict=True):
                tally[f"lang:{lang}" if reason is None else f"drop:{reason}"] += 1
        kept.close()
        dropped.close()
    except BaseException:
        try:
            kept.abort()
        finally:
            dropped.abort()
        raise
    return dict(tally)


def _judge_indexed(indexed: tuple[int, WorkItem], config: ExtractConfig, out_dir: str) -> dict:
    return judge_item(indexed[1], indexed[0], config, out_dir)


def extract_documents(
    spark: SparkSession, crawl_dir: Path, config: ExtractConfig, out_dir: Path
) -> dict[str, Any]:
    """Write `out_dir/docs` (kept documents, books included) and `out_dir/dropped` (with
    `drop_reason`) from the crawl output in `crawl_dir`; return the counts.

    One Spark job: the input is cut into work items from its Parquet footers (`plan_work`),
    and each task reads its item's records, judges them and writes its two part files, in the
    Python worker; Spark hands out the items and gathers the tallies. The JVM never carries a
    page: reading the HTML into the JVM and handing it to Python as Arrow, then the judged rows
    back, cost it ~10 CPU-s per 2,000 benchmark pages, a tenth of the step's work on 2 cores.
    Each part keeps its records in input order; part numbers follow the items' order, so the
    same input, config and number of cores give the same files (pages cut off by the time limit
    aside). A part holds one item's records: a large crawl gives about one pair of files per
    8 MB of HTML.
    """
    folders = [name for name in JUDGES if (crawl_dir / name).is_dir()]
    if not folders:
        raise FileNotFoundError(
            f"extract: {crawl_dir} has none of {', '.join(JUDGES)}/; run the crawl step first"
        )
    context = spark.sparkContext
    items, counts = plan_work(
        crawl_dir, folders, max(config.partitions, 2 * context.defaultParallelism)
    )
    for name in ("docs", "dropped"):
        if (out_dir / name).exists():
            raise FileExistsError(
                f"extract: {out_dir / name} already exists; give an output folder without "
                "docs/ and dropped/ (the step writes into a fresh one)"
            )
        (out_dir / name).mkdir(parents=True)
    tallies: list[dict[str, int]] = []
    if items:
        context.setJobDescription(
            f"extract: judge {sum(counts.values())} records in {len(items)} work items"
        )
        try:
            judge = partial(_judge_indexed, config=config, out_dir=str(out_dir))
            tallies = context.parallelize(list(enumerate(items)), len(items)).map(judge).collect()
        finally:
            context.setJobDescription(None)  # type: ignore[arg-type]
    for name, schema in (("docs", KEPT_ARROW), ("dropped", JUDGED_ARROW)):
        folder = out_dir / name
        for leftover in folder.glob(".part-*.tmp"):  # from a failed task attempt
            leftover.unlink()
        if not parquet_files(folder):  # an empty dataset is still a readable folder
            pq.write_table(schema.empty_table(), folder / "part-00000.parquet")
    total: Counter = Counter()
    for tally in tallies:
        total.update(tally)
    langs = {key[5:]: n for key, n in total.items() if key.startswith("lang:")}
    reasons = {key[5:]: n for key, n in total.items() if key.startswith("drop:")}
    n_kept = sum(langs.values())
    stats: dict[str, Any] = {**counts, "kept": n_kept, "langs": dict(sorted(langs.items()))}
    stats.update({f"dropped_{reason}": n for reason, n in sorted(reasons.items())})
    written = {
        name: sum(pq.read_metadata(path).num_rows for path in parquet_files(out_dir / name))
        for name in ("docs", "dropped")
    }
    if (
        n_kept + sum(reasons.values()) != sum(counts.values())
        or written["docs"] != n_kept
        or written["dropped"] != sum(reasons.values())
    ):
        raise RuntimeError(f"extract lost or repeated documents: {stats}; files hold {written}")
    return stats
