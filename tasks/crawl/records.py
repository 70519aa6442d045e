"""Record layouts written by the crawl step: fetched pages and document records.

`DOCUMENT_SCHEMA` is the pipeline's one document record (DESIGN.md, "Contracts between steps");
books are written in it by the crawl step, and extract and curate read and write it.
"""

from __future__ import annotations

import hashlib

from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DoubleType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
)

# Parquet row-group size of the crawl's page and WARC outputs (Spark's default is 128 MB; the
# writer checks the size every 100+ records, so a group of large pages can come out larger).
# The extract step makes each row group one task (`extract.plan_work`): its cores share a large
# crawl level in ~8 MB pieces (~125 benchmark pages).
ROW_GROUP_BYTES = 8 * 2**20

# One fetched URL. `status` is null on a network error; `error` is null on success
# (else 'timeout', 'connection refused: ...', 'http 404', ...); `html` is the decoded body.
PAGE_SCHEMA = StructType(
    [
        StructField("url", StringType(), False),
        StructField("host", StringType(), False),
        StructField("depth", IntegerType(), False),
        StructField("status", IntegerType(), True),
        StructField("error", StringType(), True),
        StructField("content_type", StringType(), True),
        StructField("html", StringType(), True),
        StructField("bytes", LongType(), False),
        StructField("fetch_ms", DoubleType(), False),
        StructField("fetched_at", StringType(), False),
    ]
)

# A page as it leaves the executor: the page record, the crawler's accounting (`outcome`:
# 'ok', 'not_modified' or the error's kind; the redirect target; the validators a re-crawl
# sends; whether the body was cut at crawl.max_bytes) and the links found in it. Only the
# links go back to the driver; the other columns go to Parquet.
FETCHED_SCHEMA = StructType(
    PAGE_SCHEMA.fields
    + [
        StructField("outcome", StringType(), False),
        StructField("final_url", StringType(), True),
        StructField("etag", StringType(), True),
        StructField("last_modified", StringType(), True),
        StructField("truncated", BooleanType(), False),
        StructField("links", ArrayType(StringType(), False), False),
    ]
)

DOCUMENT_SCHEMA = StructType(
    [
        StructField("id", StringType(), False),
        StructField("url", StringType(), True),
        StructField("source", StringType(), False),
        StructField("title", StringType(), True),
        StructField("text", StringType(), True),
        StructField("lang", StringType(), True),
        StructField("lang_score", DoubleType(), True),
        StructField("fetched_at", StringType(), True),
        StructField("meta", MapType(StringType(), StringType(), True), True),
    ]
)


def document_id(key: str) -> str:
    """Stable document id: sha256 hex of the URL (web) or of `source:path` (books)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
