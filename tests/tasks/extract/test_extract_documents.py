"""The extract step in Spark: every page and book ends up kept or dropped with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.config import ExtractConfig
from tasks.crawl.records import DOCUMENT_SCHEMA, PAGE_SCHEMA, document_id
from tasks.extract.extract import extract_documents

PROSE = (
    "<html><head><title>Queues</title></head><body><article><p>A queue hands items out in the "
    "order they came in. Producers put work at one end and consumers take it from the other, "
    "which keeps a pipeline of threads busy without any of them waiting for long.</p>"
    "</article></body></html>"
)
BASE = "http://127.0.0.1:8000/"


def page(name: str, status: int | None, error: str | None, ctype: str | None, html: str | None):
    body = len(html or "")
    return (
        BASE + name,
        "127.0.0.1",
        1,
        status,
        error,
        ctype,
        html,
        body,
        1.5,
        "2026-01-01T00:00:00+00:00",
    )


def book(name: str, text: str):
    meta = {"file": name, "author": "Ann Author"}
    return (
        document_id(f"book:{name}"),
        f"file:///b/{name}",
        "book",
        name,
        text,
        None,
        None,
        "2026-01-01T00:00:00+00:00",
        meta,
    )


@pytest.fixture()
def crawl_dir(spark, tmp_path: Path) -> Path:
    """A crawl output with one page or book per outcome."""
    pages = [
        page("queues.html", 200, None, "text/html", PROSE),
        page("short.html", 200, None, "text/html", "<html><body><p>Hi.</p></body></html>"),
        page("empty.html", 200, None, "text/html", "<html><body></body></html>"),
        page("notes.txt", 200, None, "text/plain", "plain text " * 20),
        page("missing.html", 404, "http 404", "text/html", None),
        page("down.html", None, "connection refused: [Errno 111]", None, None),
    ]
    books = [
        book("tale.txt", "Once upon a time there was a small cottage at the edge of a wood. " * 5),
        book("stub.txt", "Too short."),
    ]
    spark.createDataFrame(pages, PAGE_SCHEMA).write.parquet(str(tmp_path / "crawl" / "pages"))
    spark.createDataFrame(books, DOCUMENT_SCHEMA).write.parquet(str(tmp_path / "crawl" / "books"))
    return tmp_path / "crawl"


def test_every_input_is_kept_or_dropped_with_its_reason(spark, crawl_dir, tmp_path):
    stats = extract_documents(
        spark, crawl_dir, ExtractConfig(min_chars=50, partitions=2), tmp_path / "out"
    )
    assert stats == {
        "input_pages": 6,
        "input_books": 2,
        "kept": 2,
        "langs": {"en": 2},
        "dropped_extraction_empty": 1,
        "dropped_fetch_error": 2,
        "dropped_not_html": 1,
        "dropped_too_short": 2,
    }
    docs = {r["source"]: r for r in spark.read.parquet(str(tmp_path / "out" / "docs")).collect()}
    web, tale = docs["web"], docs["book"]
    assert web["id"] == document_id(BASE + "queues.html") and web["title"] == "Queues"
    assert web["text"].startswith("A queue hands items out in the order they came in.")
    assert web["lang"] == "en" and 0.5 < web["lang_score"] <= 1.0
    assert web["meta"] == {
        "host": "127.0.0.1",
        "depth": "1",
        "status": "200",
        "content_type": "text/html",
    }
    assert (
        tale["title"] == "tale.txt"
        and tale["lang"] == "en"
        and tale["meta"]["author"] == "Ann Author"
    )

    dropped = spark.read.parquet(str(tmp_path / "out" / "dropped"))
    assert dropped.columns == DOCUMENT_SCHEMA.names + ["drop_reason"]
    reasons = {r["url"].rsplit("/", 1)[-1]: r["drop_reason"] for r in dropped.collect()}
    assert reasons == {
        "short.html": "too_short",
        "empty.html": "extraction_empty",
        "notes.txt": "not_html",
        "missing.html": "fetch_error",
        "down.html": "fetch_error",
        "stub.txt": "too_short",
    }
    [down] = dropped.where(dropped.url.endswith("down.html")).collect()
    assert down["meta"]["fetch_error"].startswith("connection refused")


def test_extract_needs_a_crawl_output(spark, tmp_path):
    with pytest.raises(FileNotFoundError, match="run the crawl step first"):
        extract_documents(spark, tmp_path / "nothing", ExtractConfig(), tmp_path / "out")
