"""One input file's records as one Parquet part file of a folder, with a completion marker.

A Spark task streams one file's rows into `part-<key>.parquet` (key: a hash of the file's
location) through pyarrow's ParquetWriter in row groups of about `ROW_GROUP_BYTES`, under a
hidden temp name (readers skip names starting '.' or '_') renamed into place when the file is
done; then `_done/<key>.json` records its counts. A re-run skips a file with a marker and
rewrites one without (a crash mid-file leaves a temp file or an unmarked part, both replaced).
Only the counts go back to the driver.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark import TaskContext

from tasks.crawl.records import ROW_GROUP_BYTES

DONE_DIR = "_done"
GROUP_ROWS = 2000  # rows per row group at most, however small they are


def file_key(location: str) -> str:
    """The 24-hex-digit name of `location`'s part file and marker."""
    return hashlib.sha256(location.encode("utf-8")).hexdigest()[:24]


def marker_path(out_dir: Path, location: str) -> Path:
    """Where the completion marker of `location` lies in `out_dir`."""
    return out_dir / DONE_DIR / f"{file_key(location)}.json"


def read_marker(out_dir: Path, location: str) -> dict[str, Any] | None:
    """The marker of a finished `location` ({"location", "records": {source: n}}), else None
    (none, unreadable, or another location's)."""
    try:
        marker = json.loads(marker_path(out_dir, location).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and marker.get("location") == location else None


def _row_bytes(row: tuple) -> int:
    return sum(len(value) for value in row if isinstance(value, str | bytes))


def write_part(
    out_dir: Path, location: str, rows: Iterable[tuple], schema: pa.Schema, source_column: str
) -> dict[str, Any]:
    """Write `rows` (tuples in `schema`'s order) as `location`'s part file and marker; return
    the marker. No rows: no part file, a marker with no records. On an error nothing of this
    attempt stays (the error is raised)."""
    key = file_key(location)
    final = out_dir / f"part-{key}.parquet"
    context = TaskContext.get()
    attempt = context.attemptNumber() if context is not None else 0
    tmp = out_dir / f".part-{key}.attempt-{attempt}.tmp"
    final.unlink(missing_ok=True)  # an unmarked part of a crashed run is rewritten
    names, source_at = schema.names, schema.names.index(source_column)
    counts: Counter[str] = Counter()
    writer: pq.ParquetWriter | None = None
    batch: list[tuple] = []
    batch_bytes = 0

    def flush() -> None:
        nonlocal writer, batch, batch_bytes
        if writer is None:
            writer = pq.ParquetWriter(tmp, schema)
        columns = list(zip(*batch, strict=True))
        writer.write_table(pa.table(dict(zip(names, columns, strict=True)), schema=schema))
        batch, batch_bytes = [], 0

    try:
        for row in rows:
            batch.append(row)
            counts[row[source_at]] += 1
            batch_bytes += _row_bytes(row)
            if batch_bytes >= ROW_GROUP_BYTES or len(batch) >= GROUP_ROWS:
                flush()
        if batch:
            flush()
        if writer is not None:
            writer.close()
            os.replace(tmp, final)
    except BaseException:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
        raise
    marker = {"location": location, "records": dict(sorted(counts.items()))}
    done = marker_path(out_dir, location)
    done_tmp = done.with_name(f".{done.name}.attempt-{attempt}.tmp")
    done_tmp.write_text(json.dumps(marker, sort_keys=True))
    os.replace(done_tmp, done)
    return marker
