"""Existing dumps (JSONL, Parquet, text; local or remote) as document records."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.config import CrawlConfig
from tasks.crawl.dumps import dump_records, ingest_dumps
from tasks.crawl.pydoc_site import serve_site
from tasks.crawl.records import DOCUMENT_SCHEMA, document_id
from tasks.crawl.sources import open_source

ROWS = [
    {"body": "First document of the dump.", "url": "https://x.example/1", "title": "One"},
    {"body": "Second document, no url.", "score": 0.5},
    {"body": None},
]


def rows_of(location: str, config: CrawlConfig) -> list[dict]:
    records = dump_records(location, config, "2026-01-01T00:00:00+00:00")
    return [dict(zip(DOCUMENT_SCHEMA.names, r, strict=True)) for r in records]


@pytest.fixture()
def dumps(tmp_path: Path) -> Path:
    folder = tmp_path / "dumps"
    folder.mkdir()
    lines = "".join(json.dumps(row) + "\n" for row in ROWS)
    (folder / "a.jsonl").write_text(lines + "\n")  # a blank line is skipped
    (folder / "b.jsonl.gz").write_bytes(gzip.compress(lines.encode("utf-8")))
    pq.write_table(pa.Table.from_pylist(ROWS), folder / "c.parquet")
    (folder / "d.txt").write_text("\ufeffA whole plain-text file\nis one document.\n")
    return folder


def test_each_format_gives_its_rows(dumps: Path) -> None:
    config = CrawlConfig(dump_text_field="body")
    for name in ("a.jsonl", "b.jsonl.gz", "c.parquet"):
        rows = rows_of(str(dumps / name), config)
        assert [r["text"] for r in rows] == [row["body"] for row in ROWS], name
        first, second = rows[0], rows[1]
        assert (first["url"], first["title"], first["source"]) == (
            "https://x.example/1",
            "One",
            "dump",
        )
        assert second["url"] == (dumps / name).as_uri() and second["title"] is None
        assert second["meta"] == {"dump_file": name, "dump_row": "1"}
        assert second["id"] == document_id(f"dump:{dumps / name}:1")
    [text] = rows_of(str(dumps / "d.txt"), config)
    assert text["text"] == "A whole plain-text file\nis one document.\n"


def test_bad_dumps_fail_with_what_to_do(dumps: Path, tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"no 'text' field \(it has \['body', 'title', 'url'\]\).*dump_text_field"
    ):
        rows_of(str(dumps / "a.jsonl"), CrawlConfig())
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\nnot json\n')
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        rows_of(str(tmp_path / "bad.jsonl"), CrawlConfig())
    with pytest.raises(ValueError, match=r"\.jsonl, \.ndjson, \.json, \.parquet or \.txt"):
        rows_of(str(tmp_path / "data.csv"), CrawlConfig())


def test_a_remote_dump_is_fetched_through_the_crawler_fetcher(dumps: Path) -> None:
    config = CrawlConfig(dump_text_field="body", allow_private_hosts=["127.0.0.1"])
    with serve_site(dumps) as root:
        rows = rows_of(root + "c.parquet", config)
        assert [r["text"] for r in rows] == [row["body"] for row in ROWS]
        assert rows[1]["url"] == root + "c.parquet"
        with pytest.raises(OSError, match="missing.jsonl: http 404"):
            rows_of(root + "missing.jsonl", config)
        with pytest.raises(OSError, match="crawl.max_file_bytes"):
            with open_source(
                root + "c.parquet",
                CrawlConfig(max_file_bytes=10, allow_private_hosts=["127.0.0.1"]),
            ):
                pass
    with pytest.raises(OSError, match="private|loopback|refused"):  # not allowed by default
        with open_source(root + "c.parquet", CrawlConfig(max_retries=0)):
            pass


def test_ingest_dumps_in_spark(spark, dumps: Path, tmp_path: Path) -> None:
    config = CrawlConfig(
        dump_paths=[str(dumps / "*.jsonl*"), str(dumps / "d.txt")], dump_text_field="body"
    )
    assert ingest_dumps(spark, config, tmp_path / "out") == {"files": 3, "documents": 7}
    written = spark.read.parquet(str(tmp_path / "out"))
    assert written.columns == DOCUMENT_SCHEMA.names and written.select("id").distinct().count() == 7
    assert ingest_dumps(spark, CrawlConfig(), tmp_path / "none") == {}
