"""One input file's records as one Parquet part file of a folder, with a completion marker.

A Spark task streams one file's rows into `part-<key>.parquet` (key: a hash of the file's
location) through pyarrow's ParquetWriter in row groups of about `ROW_GROUP_BYTES`, under a
hidden temp name (readers skip names starting '.' or '_') renamed into place when the file is
done; then `_done/<key>.json` records its counts and the settings that shaped its rows. A
re-run skips a file with a marker of the same settings and rewrites one without (a crash
mid-file leaves a temp file or an unmarked part, both replaced). Only the counts go back to
the driver.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
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


def read_marker(out_dir: Path, location: str, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The marker of `location` finished under `settings` ({"location", "settings",
    "records": {source: n}}), else None (none, unreadable, another location's or settings')."""
    try:
        marker = json.loads(marker_path(out_dir, location).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict):
        return None
    same = marker.get("location") == location and marker.get("settings") == settings
    return marker if same else None


def publish_part(parts_dir: Path, out_dir: Path, location: str) -> None:
    """Put `location`'s part file (if it has one) from `parts_dir` into `out_dir`: a hard link,
    or a copy where the two are on different file systems."""
    name = f"part-{file_key(location)}.parquet"
    if not (parts_dir / name).is_file():
        return
    (out_dir / name).unlink(missing_ok=True)
    try:
        os.link(parts_dir / name, out_dir / name)
    except OSError:
        shutil.copyfile(parts_dir / name, out_dir / name)


def _row_bytes(row: tuple) -> int:
    return sum(len(value) for value in row if isinstance(value, str | bytes))


def write_part(
    out_dir: Path,
    location: str,
    rows: Iterable[tuple],
    schema: pa.Schema,
    source_column: str,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """Write `rows` (tuples in `schema`'s order) as `location`'s part file and marker (which
    keeps `settings`, those that shape the rows); return the marker. No rows: no part file, a
    marker with no records. On an error nothing of this attempt stays (the error is raised)."""
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
    marker = {"location": location, "settings": settings, "records": dict(sorted(counts.items()))}
    done = marker_path(out_dir, location)
    done_tmp = done.with_name(f".{done.name}.attempt-{attempt}.tmp")
    done_tmp.write_text(json.dumps(marker, sort_keys=True))
    os.replace(done_tmp, done)
    return marker
