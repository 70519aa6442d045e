"""Common Crawl WARC and WET files as records, streamed with warcio in a Spark job.

A WARC `response` record becomes a page-like row (HTTP status, content type, decoded HTML:
warcio undoes chunked transfer-encoding and content-encoding) that the extract step runs
through trafilatura like a crawled page; a WET `conversion` record becomes a row whose text is
taken as it is. Other record types (warcinfo, request, metadata, resource) are skipped.
Gzip per record and plain files are both read. The files (local, or remote and streamed as
the crawler fetches: `stream.stream_url`; a `warc.paths.gz` list expanded against
`crawl.warc_base_url`) are spread over Spark tasks, one file per task, each streamed with
warcio's ArchiveIterator into its own Parquet part and completion marker (`file_parts`), so
memory does not follow a file's size and a re-run skips the files already done. A payload is
cut at `crawl.max_bytes` (noted as meta 'truncated').
"""

from __future__ import annotations

import gzip
import io
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pyarrow as pa
from pyspark.sql import SparkSession
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import LongType, MapType, StringType, StructField, StructType
from warcio.archiveiterator import ArchiveIterator
from warcio.recordloader import ArcWarcRecord

from tasks.config import CrawlConfig
from tasks.crawl.fetch import HTML_TYPES, decode_body
from tasks.crawl.file_parts import DONE_DIR, publish_part, read_marker, write_part
from tasks.crawl.records import PAGE_SCHEMA, document_id
from tasks.crawl.sources import expand_sources, is_url, source_name, stream_source

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


# `WARC_SCHEMA` as the tasks write it with pyarrow (every column nullable, as Spark reads it).
WARC_ARROW = pa.schema([field.with_nullable(True) for field in to_arrow_schema(WARC_SCHEMA)])


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
    with stream_source(location, config) as stream:
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


def is_path_list(location: str) -> bool:
    """Whether `location` is a Common Crawl path list (`warc.paths.gz`, `wet.paths`, ...)."""
    return source_name(location).lower().endswith(("paths.gz", ".paths"))


def resolve_entry(entry: str, base: str) -> str:
    """A path list's entry as a URL or local path: absolute ones as they are, relative ones
    under `base` (`crawl.warc_base_url`, a URL or a folder)."""
    if is_url(entry) or Path(entry).is_absolute():
        return entry
    if is_url(base):
        return urljoin(base.rstrip("/") + "/", entry.lstrip("/"))
    return str(Path(base).expanduser().resolve() / entry)


def listed_paths(location: str, config: CrawlConfig, limit: int | None) -> list[str]:
    """The first `limit` (None: all) entries of the path list `location`, resolved; read as a
    stream (gzip undone when the name ends in .gz), lines that are blank or start '#' skipped."""
    found: list[str] = []
    with stream_source(location, config) as raw:
        stream = gzip.GzipFile(fileobj=raw) if location.lower().endswith(".gz") else raw
        for line in io.TextIOWrapper(stream, encoding="utf-8"):
            entry = line.strip()
            if entry and not entry.startswith("#"):
                found.append(resolve_entry(entry, config.warc_base_url))
                if limit is not None and len(found) >= limit:
                    break
    return found


def warc_locations(config: CrawlConfig) -> list[str]:
    """The files `crawl.warc_paths` names, path lists expanded, in order, once each, at most
    `crawl.warc_max_files` of them (0: all)."""
    limit = config.warc_max_files or None
    found: dict[str, None] = {}
    for location in expand_sources(config.warc_paths, "crawl.warc_paths"):
        if limit is not None and len(found) >= limit:
            break
        if is_path_list(location):
            wanted = None if limit is None else limit - len(found)
            found.update(dict.fromkeys(listed_paths(location, config, wanted)))
        else:
            found[location] = None
    return list(found)[:limit]


def record_settings(config: CrawlConfig) -> dict[str, Any]:
    """The settings a WARC file's rows depend on, kept in its marker: a finished file is
    read again when they change."""
    return {"max_bytes": config.max_bytes, "columns": WARC_ARROW.names}


def ingest_file(location: str, config: CrawlConfig, out_dir: str) -> dict[str, Any]:
    """Stream one WARC/WET file into its part file and marker under `out_dir` (in a Spark
    task); return its marker, or {"failed": reason} when it could not be read (nothing of it
    is kept; a re-run tries it again)."""
    try:
        rows = warc_records(location, config)
        settings = record_settings(config)
        return write_part(Path(out_dir), location, rows, WARC_ARROW, "source", settings)
    except Exception as err:  # one unreadable file is counted, the others go on
        return {"failed": f"{type(err).__name__}: {err}".replace(location, "<file>")[:200]}


def ingest_warc(spark: SparkSession, config: CrawlConfig, out_dir: Path) -> dict[str, Any]:
    """Write the records of `crawl.warc_paths` to `out_dir` (`WARC_SCHEMA`, one part file per
    WARC file, `ingest_file`), skipping the files a completion marker says are done (in
    `crawl.warc_resume_dir`, else in `out_dir`); return the counts. No paths: nothing is
    written."""
    locations = warc_locations(config)
    if not locations:
        return {}
    parts_dir = Path(config.warc_resume_dir).expanduser() if config.warc_resume_dir else out_dir
    (parts_dir / DONE_DIR).mkdir(parents=True, exist_ok=True)
    settings = record_settings(config)
    done = {
        location: marker
        for location in locations
        if (marker := read_marker(parts_dir, location, settings)) is not None
    }
    todo = [location for location in locations if location not in done]
    folder = str(parts_dir)
    results = (
        spark.sparkContext.parallelize(todo, len(todo))
        .map(lambda location: (location, ingest_file(location, config, folder)))
        .collect()
        if todo
        else []
    )
    totals: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    for location, result in [*done.items(), *results]:
        if "failed" in result:
            failed[result["failed"]] += 1
            continue
        totals.update(result["records"])
        if parts_dir != out_dir:
            publish_part(parts_dir, out_dir, location)
    return {
        "files": len(locations),
        "warc_files_read": len(results) - failed.total(),
        "warc_files_skipped_done": len(done),
        "warc_files_failed": dict(sorted(failed.items())),
        "warc_records": totals["warc"],
        "wet_records": totals["wet"],
    }
