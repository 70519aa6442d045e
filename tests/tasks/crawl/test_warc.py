"""WARC/WET files as records: responses and conversions only, encodings undone, in Spark."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from tasks.config import CrawlConfig, ExtractConfig
from tasks.crawl.records import document_id
from tasks.crawl.warc import WARC_SCHEMA, ingest_warc, warc_records
from tasks.extract.extract import extract_documents

PAGE = "<html><body><p>Caf\xe9 au lait is coffee with hot milk, in a large cup.</p></body></html>"


def chunked(body: bytes, size: int = 10) -> bytes:
    parts = [
        b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size])
        for i in range(0, len(body), size)
    ]
    return b"".join(parts) + b"0\r\n\r\n"


def write_warc(path: Path) -> None:
    """A WARC with a chunked latin-1 page, a gzip-encoded page, a PNG, a request and a 404."""
    with open(path, "wb") as out:
        writer = WARCWriter(out, gzip=True)

        def response(url: str, status: str, headers: list[tuple[str, str]], payload: bytes) -> None:
            http = StatusAndHeaders(status, headers, protocol="HTTP/1.1")
            record = writer.create_warc_record(
                url, "response", payload=io.BytesIO(payload), http_headers=http
            )
            writer.write_record(record)

        html = [("Content-Type", "text/html; charset=iso-8859-1")]
        response(
            "https://a.example/cafe",
            "200 OK",
            [*html, ("Transfer-Encoding", "chunked")],
            chunked(PAGE.encode("latin-1")),
        )
        gzipped = [("Content-Type", "text/html"), ("Content-Encoding", "gzip")]
        response("https://a.example/gz", "200 OK", gzipped, gzip.compress(PAGE.encode("utf-8")))
        response(
            "https://a.example/logo.png", "200 OK", [("Content-Type", "image/png")], b"\x89PNG\r\n"
        )
        response("https://a.example/gone", "404 Not Found", html, b"<html>gone</html>")
        request = writer.create_warc_record(
            "https://a.example/cafe", "request", payload=io.BytesIO(b"GET / HTTP/1.1\r\n\r\n")
        )
        writer.write_record(request)


def test_responses_are_decoded_and_other_records_skipped(tmp_path: Path) -> None:
    write_warc(tmp_path / "made.warc.gz")
    rows = [
        dict(zip(WARC_SCHEMA.names, r, strict=True))
        for r in warc_records(str(tmp_path / "made.warc.gz"), CrawlConfig())
    ]
    by_url = {r["url"].rsplit("/", 1)[-1]: r for r in rows}
    assert sorted(by_url) == ["cafe", "gone", "gz", "logo.png"]  # the request record is skipped
    assert by_url["cafe"]["html"] == PAGE and by_url["gz"]["html"] == PAGE
    assert by_url["logo.png"]["html"] is None and by_url["logo.png"]["content_type"] == "image/png"
    assert by_url["gone"]["status"] == 404 and {r["source"] for r in rows} == {"warc"}
    cut = list(warc_records(str(tmp_path / "made.warc.gz"), CrawlConfig(max_bytes=20)))[0]
    assert len(cut[6]) == 20 and cut[-1]["truncated"] == "true"


def test_real_common_crawl_and_wget_files(shared_corpus: Path) -> None:
    folder, config = shared_corpus / "warc", CrawlConfig()
    counts = {f.name: len(list(warc_records(str(f), config))) for f in folder.glob("*.gz")}
    assert counts == {
        "sample-0000.warc.gz": 22,
        "sample-0001.warc.gz": 15,
        "whirlwind.warc.gz": 1,
        "whirlwind.warc.wet.gz": 1,
        "whirlwind.warc.wat.gz": 0,
    }
    rows = [
        dict(zip(WARC_SCHEMA.names, r, strict=True))
        for r in warc_records(str(folder / "sample-0000.warc.gz"), config)
    ]
    weld = next(r for r in rows if r["url"].endswith("/faculty/weld"))  # sent chunked
    assert weld["bytes"] == 27203 and weld["html"].rstrip().endswith("</html>")
    assert "\r\n1000\r\n" not in weld["html"]
    [wet] = warc_records(str(folder / "whirlwind.warc.wet.gz"), config)
    assert wet[2] == "wet" and wet[7].startswith("Escopete") and wet[-1]["warc_language"] == "spa"


def test_warc_files_through_crawl_and_extract(spark, shared_corpus: Path, tmp_path: Path) -> None:
    config = CrawlConfig(warc_paths=[str(shared_corpus / "warc" / "whirlwind.warc*.gz")])
    stats = ingest_warc(spark, config, tmp_path / "crawl" / "warc")
    assert stats["files"] == 3 and stats["warc_files_read"] == 3
    assert (stats["warc_records"], stats["wet_records"]) == (1, 1)
    result = extract_documents(
        spark, tmp_path / "crawl", ExtractConfig(partitions=1), tmp_path / "out"
    )
    assert result["input_warc"] == 2 and result["kept"] == 2
    docs = {d["source"]: d for d in spark.read.parquet(str(tmp_path / "out" / "docs")).collect()}
    warc, wet = docs["warc"], docs["wet"]
    assert warc["url"] == wet["url"] == "https://an.wikipedia.org/wiki/Escopete"
    assert warc["title"].startswith("Escopete") and "escopete" in warc["text"].lower()
    assert wet["text"].startswith("Escopete") and wet["meta"]["warc_language"] == "spa"
    assert warc["fetched_at"] == "2024-05-18T01:58:10Z" and warc["lang"] == wet["lang"]
    assert warc["id"] == document_id(f"warc:{warc['meta']['warc_record_id']}") != wet["id"]


def test_warc_paths_that_match_nothing_name_the_key(spark, tmp_path: Path) -> None:
    assert ingest_warc(spark, CrawlConfig(), tmp_path / "none") == {}
    with pytest.raises(FileNotFoundError, match="crawl.warc_paths"):
        ingest_warc(spark, CrawlConfig(warc_paths=[str(tmp_path / "*.warc.gz")]), tmp_path / "out")
