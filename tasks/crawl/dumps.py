"""Existing dumps a team already has: JSONL, Parquet and plain-text files, as document records.

The format follows the file name: `.jsonl`/`.ndjson`/`.json` (one JSON object per line),
`.parquet`, `.txt` (the whole file is one document); `.gz` on JSONL and text is undone. A row's
text is in `crawl.dump_text_field`; its `url` and `title` fields are used when present. Files
are local paths, globs or URLs, spread over Spark tasks one file per task.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow.parquet as pq
from pyspark.sql import SparkSession

from tasks.config import CrawlConfig
from tasks.crawl.records import DOCUMENT_SCHEMA, document_id
from tasks.crawl.sources import expand_sources, is_url, open_source, source_name

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
FORMATS[".txt"] = "text"


def dump_format(location: str) -> str:
    """'jsonl', 'parquet' or 'text' from the file name (a trailing `.gz` ignored)."""
    name = source_name(location).lower().removesuffix(".gz")
    found = FORMATS.get(Path(name).suffix)
    if found is None:
        raise ValueError(
            f"crawl.dump_paths: {location!r} is not a .jsonl, .ndjson, .json, .parquet or .txt "
            "file (optionally .gz)"
        )
    return found


def dump_objects(
    location: str, kind: str, stream: BinaryIO, text_field: str
) -> Iterator[dict[str, Any]]:
    """The rows of one dump of format `kind` as dicts; a text file is one row with its text
    in `text_field`."""
    if kind == "parquet":
        for batch in pq.ParquetFile(stream).iter_batches():
            yield from batch.to_pylist()
        return
    if source_name(location).lower().endswith(".gz"):
        stream = gzip.GzipFile(fileobj=stream)
    lines = io.TextIOWrapper(stream, encoding="utf-8", errors="replace")
    if kind == "text":
        yield {text_field: lines.read().removeprefix("\ufeff")}
        return
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{location}: line {number} is not JSON: {err}") from err


def dump_records(location: str, config: CrawlConfig, ingested_at: str) -> Iterator[tuple]:
    """Rows in `DOCUMENT_SCHEMA` order (source 'dump') of one dump file."""
    field, name, kind = config.dump_text_field, source_name(location), dump_format(location)
    file_url = location if is_url(location) else Path(location).as_uri()
    with open_source(location, config) as stream:
        for row, obj in enumerate(dump_objects(location, kind, stream, field)):
            if not isinstance(obj, dict) or field not in obj:
                keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
                raise ValueError(
                    f"{location}: row {row} has no {field!r} field (it has {keys}); set "
                    "crawl.dump_text_field to the field holding the text"
                )
            text = obj[field] if isinstance(obj[field], str) else None
            url = obj.get("url") if isinstance(obj.get("url"), str) else file_url
            title = obj.get("title") if isinstance(obj.get("title"), str) else None
            meta = {"dump_file": name, "dump_row": str(row)}
            doc_id = document_id(f"dump:{location}:{row}")
            yield (doc_id, url, "dump", title, text, None, None, ingested_at, meta)


def ingest_dumps(spark: SparkSession, config: CrawlConfig, out_dir: Path) -> dict[str, int]:
    """Write the documents of `crawl.dump_paths` to `out_dir`; return file and row counts.
    No paths: nothing is written."""
    locations = expand_sources(config.dump_paths, "crawl.dump_paths")
    if not locations:
        return {}
    for location in locations:
        dump_format(location)  # fail on the driver, before any work, on an unknown format
    ingested_at = datetime.now(UTC).isoformat(timespec="seconds")
    rows = spark.sparkContext.parallelize(locations, len(locations)).flatMap(
        lambda location: dump_records(location, config, ingested_at)
    )
    spark.createDataFrame(rows, DOCUMENT_SCHEMA).write.parquet(str(out_dir))
    return {"files": len(locations), "documents": spark.read.parquet(str(out_dir)).count()}
