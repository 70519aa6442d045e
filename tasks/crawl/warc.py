"""Common Crawl WARC and WET files as records, streamed with warcio in a Spark job.

A WARC `response` record becomes a page-like row (HTTP status, content type, decoded HTML:
warcio undoes chunked transfer-encoding and content-encoding) that the extract step runs
through trafilatura like a crawled page; a WET `conversion` record becomes a row whose text is
taken as it is. Other record types (warcinfo, request, metadata, resource) are skipped.
Gzip per record and plain files are both read. The files are spread over Spark tasks, one
file per task; a payload is cut at `crawl.max_bytes` (noted as meta 'truncated').
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, MapType, StringType, StructField, StructType
from warcio.archiveiterator import ArchiveIterator
from warcio.recordloader import ArcWarcRecord

from tasks.config import CrawlConfig
from tasks.crawl.fetch import HTML_TYPES, decode_body
from tasks.crawl.records import PAGE_SCHEMA, ROW_GROUP_BYTES, document_id
from tasks.crawl.sources import expand_sources, open_source, source_name

# One WARC response ('warc') or WET conversion ('wet') record. `html` is set for 'warc',
# `text` for 'wet'; `error` says why a payload could not be read; `fetched_at` is WARC-Date.
WARC_SCHEMA = StructType(
    [
        StructField("id", StringType(), False),
        StructField("url", StringType(), True),
        StructField("source", StringType(), False),
        PAGE_SCHEMA["status"],
        PAGE_SCHEMA["error"],
        PAGE_SCHEMA["content_type"],
        PAGE_SCHEMA["html"],
        StructField("text", StringType(), True),
        StructField("bytes", LongType(), False),
        StructField("fetched_at", StringType(), True),
        StructField("meta", MapType(StringType(), StringType(), True), True),
    ]
)


def read_payload(record: ArcWarcRecord, max_bytes: int, meta: dict[str, str]) -> bytes:
    """The record's payload (transfer- and content-encoding undone), cut at `max_bytes`."""
    payload = record.content_stream().read(max_bytes + 1)
    if len(payload) > max_bytes:
        meta["truncated"] = "true"
    return payload[:max_bytes]


def response_row(record: ArcWarcRecord, max_bytes: int, meta: dict[str, str]) -> tuple:
    """(status, error, content_type, html, text, bytes) of a WARC response record."""
    http = record.http_headers
    if http is None:
        return None, "not an http response", None, None, None, 0
    status = int(http.get_statuscode()) if http.get_statuscode().isdigit() else None
    header = http.get_header("Content-Type") or ""
    content_type = header.split(";")[0].strip().lower() or None
    charset = None
    for param in header.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip("\"'") or None
    try:
        payload = read_payload(record, max_bytes, meta)
    except Exception as err:  # a broken chunked or gzip payload: recorded, not raised
        return status, f"payload: {type(err).__name__}: {err}"[:300], content_type, None, None, 0
    textual = content_type is None or content_type.startswith("text/")
    html = decode_body(payload, charset) if textual or content_type in HTML_TYPES else None
    return status, None, content_type, html, None, len(payload)


def warc_records(location: str, config: CrawlConfig) -> Iterator[tuple]:
    """The response and conversion records of one WARC/WET file, as `WARC_SCHEMA` rows."""
    with open_source(location, config) as stream:
        for record in ArchiveIterator(stream):
            if record.rec_type not in ("response", "conversion"):
                continue
            headers = record.rec_headers
            record_id = headers.get_header("WARC-Record-ID") or ""
            meta = {"warc_file": source_name(location), "warc_record_id": record_id}
            if record.rec_type == "response":
                source, fields = "warc", response_row(record, config.max_bytes, meta)
            else:
                language = headers.get_header("WARC-Identified-Content-Language")
                if language:
                    meta["warc_language"] = language
                payload = read_payload(record, config.max_bytes, meta)
                text = payload.decode("utf-8", errors="replace")
                source, fields = "wet", (None, None, "text/plain", None, text, len(payload))
            url = headers.get_header("WARC-Target-URI")
            doc_id = document_id(f"{source}:{record_id or url}")
            yield (doc_id, url, source, *fields, headers.get_header("WARC-Date"), meta)


def ingest_warc(spark: SparkSession, config: CrawlConfig, out_dir: Path) -> dict[str, Any]:
    """Write the records of `crawl.warc_paths` to `out_dir` (`WARC_SCHEMA`); return the
    counts per source. No paths: nothing is written."""
    locations = expand_sources(config.warc_paths, "crawl.warc_paths")
    if not locations:
        return {}
    rows = spark.sparkContext.parallelize(locations, len(locations)).flatMap(
        lambda location: warc_records(location, config)
    )
    writer = spark.createDataFrame(rows, WARC_SCHEMA).write
    writer.option("parquet.block.size", ROW_GROUP_BYTES).parquet(str(out_dir))
    written = spark.read.parquet(str(out_dir)).groupBy("source").agg(F.count("*").alias("n"))
    counts = {f"{row['source']}_records": row["n"] for row in written.collect()}
    return {"files": len(locations), **dict(sorted(counts.items()))}
