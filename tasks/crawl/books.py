"""Books: Project Gutenberg-style `.txt` files from a folder or from URLs, as document records.

The Project Gutenberg header (title, author, licence preamble) and footer (licence) are cut
at the `*** START OF THE/THIS PROJECT GUTENBERG EBOOK ... ***` and `*** END OF ...` lines;
both marker styles occur, the END line may be indented. A file without markers is kept
whole, titled by its file name. UTF-8 BOM and CRLF line ends are removed.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from pyspark.sql import SparkSession

from tasks.config import CrawlConfig
from tasks.crawl.fetch import host_partition, url_host
from tasks.crawl.records import DOCUMENT_SCHEMA, document_id
from tasks.crawl.sources import open_source, source_name

START = re.compile(r"^[ \t]*\*{3} ?START OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK.*$", re.M | re.I)
END = re.compile(r"^[ \t]*\*{3} ?END OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK.*$", re.M | re.I)
# The older style puts the licence after the END marker in a block of its own; when the END
# marker is missing, that block still ends the book.
LICENCE = re.compile(r"^[ \t]*\*{3} ?START: FULL LICEN[CS]E \*{3}.*$", re.M | re.I)
# Older books repeat the end in prose just above the END marker.
END_PROSE = re.compile(r"\n[ \t]*End of (?:the )?Project Gutenberg.*\s*$", re.I)
HEADER_FIELD = re.compile(r"^(Title|Author|Language):[ \t]*(.+?)[ \t]*$", re.M)
EBOOK_NUMBER = re.compile(r"\[E-?Book #(\d+)\]", re.I)


def parse_gutenberg(raw: str, fallback_title: str) -> tuple[str, dict[str, str]]:
    """Cut the Gutenberg header and footer; return (body, fields). `fields` has 'title' (the
    header's, else `fallback_title`) and 'author', 'language', 'gutenberg_id' if given."""
    text = raw.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    meta: dict[str, str] = {"title": fallback_title}
    start = START.search(text)
    if start is None:
        return text.strip(), meta
    header, body = text[: start.start()], text[start.end() :]
    for key, value in HEADER_FIELD.findall(header):
        meta[key.lower()] = value
    number = EBOOK_NUMBER.search(header)
    if number:
        meta["gutenberg_id"] = number.group(1)
    end = END.search(body) or LICENCE.search(body)
    if end is not None:
        body = END_PROSE.sub("", body[: end.start()])
    return body.strip(), meta


def book_row(raw: str, key: str, url: str, name: str, ingested_at: str) -> tuple:
    """One book's text as a row in `DOCUMENT_SCHEMA` order (no language yet); `key` makes
    its id, `name` is its file name."""
    body, fields = parse_gutenberg(raw, fallback_title=Path(name).stem)
    title = fields.pop("title")
    meta = {"file": name, "chars": str(len(body)), **fields}
    return (document_id(f"book:{key}"), url, "book", title, body, None, None, ingested_at, meta)


def book_record(path: str, ingested_at: str) -> tuple:
    """Read one book file; return a row in `DOCUMENT_SCHEMA` order (no language yet)."""
    file = Path(path)
    raw = file.read_bytes().decode("utf-8", errors="replace")
    return book_row(raw, file.name, file.resolve().as_uri(), file.name, ingested_at)


def book_url_record(url: str, config: CrawlConfig, ingested_at: str) -> tuple:
    """Fetch one book URL with the crawler's fetcher; a row in `DOCUMENT_SCHEMA` order. A
    failed fetch gives a row without text whose meta holds the 'fetch_error'."""
    try:
        with open_source(url, config) as stream:
            raw = stream.read().decode("utf-8", errors="replace")
    except OSError as err:
        meta = {"file": source_name(url), "fetch_error": str(err)[:300]}
        return (document_id(f"book:{url}"), url, "book", None, None, None, None, ingested_at, meta)
    return book_row(raw, url, url, source_name(url), ingested_at)


def ingest_books(spark: SparkSession, books_dir: str, out_dir: Path) -> int:
    """Write every `*.txt` in `books_dir` to `out_dir` as document records (source 'book');
    return how many. An empty `books_dir` means no books."""
    if not books_dir:
        return 0
    folder = Path(books_dir)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"crawl.books_dir {books_dir!r} is not a folder; set it to a folder of .txt books "
            "or to '' for none"
        )
    paths = sorted(str(p.resolve()) for p in folder.glob("*.txt"))
    if not paths:
        return 0
    ingested_at = datetime.now(UTC).isoformat(timespec="seconds")
    rows = spark.sparkContext.parallelize(paths, min(len(paths), 8)).map(
        lambda path: book_record(path, ingested_at)
    )
    spark.createDataFrame(rows, DOCUMENT_SCHEMA).write.parquet(str(out_dir))
    return len(paths)


def ingest_book_urls(spark: SparkSession, config: CrawlConfig, out_dir: Path) -> dict[str, int]:
    """Append the books at `crawl.book_urls` to `out_dir` (one host's URLs share a Spark
    task, fetched one at a time); return how many were fetched and how many failed."""
    urls = sorted(set(config.book_urls))
    if not urls:
        return {}
    ingested_at = datetime.now(UTC).isoformat(timespec="seconds")
    partitions = max(1, min(config.partitions, len({url_host(u) for u in urls})))
    rows = (
        spark.sparkContext.parallelize([(url_host(u), u) for u in urls], partitions)
        .partitionBy(partitions, host_partition)
        .values()
        .map(lambda url: book_url_record(url, config, ingested_at))
    )
    spark.createDataFrame(rows, DOCUMENT_SCHEMA).write.mode("append").parquet(str(out_dir))
    failed = spark.read.parquet(str(out_dir)).where("meta['fetch_error'] IS NOT NULL").count()
    return {"book_urls": len(urls), "book_url_errors": failed}
