"""The extract step in Spark: every page and book ends up kept or dropped with a reason."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from pyspark.sql import Row

from tasks.config import ExtractConfig
from tasks.crawl.records import DOCUMENT_SCHEMA, PAGE_SCHEMA, document_id
from tasks.extract.extract import extract_documents, judge_text, page_text

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
        page("notes.txt", 200, None, "text/plain", "Plain text pages are taken as they are. " * 3),
        page("logo.png", 200, None, "image/png", None),
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
        "input_pages": 7,
        "input_warc": 0,
        "input_books": 2,
        "input_dumps": 0,
        "kept": 3,
        "langs": {"en": 3},
        "dropped_extraction_empty": 1,
        "dropped_fetch_error": 2,
        "dropped_not_html": 1,
        "dropped_too_short": 2,
    }
    docs = {
        r["url"].rsplit("/", 1)[-1]: r
        for r in spark.read.parquet(str(tmp_path / "out" / "docs")).collect()
    }
    web, tale, notes = docs["queues.html"], docs["tale.txt"], docs["notes.txt"]
    assert notes["text"] == ("Plain text pages are taken as they are. " * 3).strip()
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
        "logo.png": "not_html",
        "missing.html": "fetch_error",
        "down.html": "fetch_error",
        "stub.txt": "too_short",
    }
    [down] = dropped.where(dropped.url.endswith("down.html")).collect()
    assert down["meta"]["fetch_error"].startswith("connection refused")


def test_extract_needs_a_crawl_output(spark, tmp_path):
    with pytest.raises(FileNotFoundError, match="run the crawl step first"):
        extract_documents(spark, tmp_path / "nothing", ExtractConfig(), tmp_path / "out")


def html_page(name: str, html: str) -> Row:
    """A fetched 200 text/html page as the Row the Spark job hands to `page_text`."""
    return Row(
        **dict(zip(PAGE_SCHEMA.names, page(name, 200, None, "text/html", html), strict=True))
    )


def test_a_page_over_the_time_limit_is_an_extraction_timeout() -> None:
    paragraphs = "".join(f"<div><p>Paragraph {i} of a long page.</p></div>" for i in range(20000))
    huge = html_page("huge.html", f"<html><body>{paragraphs}</body></html>")
    meta: dict[str, str] = {}
    started = time.monotonic()
    assert page_text(huge, ExtractConfig(time_limit_s=0.05), meta) == (
        None,
        None,
        "extraction_timeout",
    )
    assert time.monotonic() - started < 5.0
    assert meta["extraction_error"] == "timeout: took longer than 0.05 s"


def test_page_text_keeps_date_and_canonical_url() -> None:
    html = (
        '<html><head><title>Dated</title><link rel="canonical" href="https://example.org/dated">'
        '<meta property="article:published_time" content="2024-03-05T10:00:00Z"></head><body>'
        f"{PROSE.split('<body>')[1]}"
    )
    meta: dict[str, str] = {}
    title, text, reason = page_text(html_page("dated.html", html), ExtractConfig(), meta)
    assert reason is None and text.startswith("A queue hands items out")
    assert meta == {"date": "2024-03-05", "canonical_url": "https://example.org/dated"}


def test_language_rules_drop_with_a_reason() -> None:
    english = "The river runs past the old mill and the children play on its banks all summer."
    german = "Der Fluss fließt an der alten Mühle vorbei und die Kinder spielen den ganzen Sommer."
    only_german = ExtractConfig(min_chars=10, allowed_langs=["de"])
    lang, score, reason = judge_text(english, only_german)
    assert (lang, reason) == ("en", "lang_not_allowed") and score > 0.5
    assert judge_text(german, only_german)[::2] == ("de", None)
    strict = ExtractConfig(min_chars=10, min_lang_score=1.01)
    assert judge_text(english, strict)[::2] == ("en", "lang_score_low")


def test_splits_evenly_wants_enough_tasks_and_none_too_large() -> None:
    """At least one task per core, none over total / (2 x cores): cores then end together."""
    from tasks.extract.extract import splits_evenly

    assert splits_evenly([10, 10, 10, 10], cores=2)
    assert splits_evenly([10, 9, 9, 8, 4], cores=2)  # a short last task is fine
    assert not splits_evenly([10, 10, 10, 10], cores=4)  # one wave: a slow task idles the rest
    assert splits_evenly([40], cores=1)  # one core: nothing to share out
    assert not splits_evenly([40, 4], cores=2)
    assert not splits_evenly([], cores=2)


def test_a_split_size_that_is_not_positive_is_refused() -> None:
    from tasks.extract.extract import step_conf

    with pytest.raises(ValueError, match="extract.split_mb must be > 0"):
        step_conf(ExtractConfig(split_mb=0))


def test_an_evenly_split_input_is_extracted_where_it_lies(
    spark, tmp_path: Path, monkeypatch
) -> None:
    """Four files of ten pages, read in splits of one file each: four equal scan tasks, so
    the pages are judged without a shuffle, with the same result as the shuffled path. One
    file is one task and is spread out first. The folder name has a space."""
    from tasks.common.spark import session_conf
    from tasks.extract.extract import scan_task_sizes, splits_evenly, step_conf

    spreads: list[int] = []  # the hash repartitions the step asked for
    frames = type(spark.range(1))  # Spark's concrete DataFrame class
    original = frames.repartition

    def recording(frame, *args, **kwargs):
        spreads.append(args[0])
        return original(frame, *args, **kwargs)

    monkeypatch.setattr(frames, "repartition", recording)

    pages = [  # random bytes: each file is ~50 kB
        page(f"p{i}.html", 200, None, "text/html", os.urandom(2000).hex() + PROSE)
        for i in range(40)
    ]
    root = tmp_path / "with space"
    frame = spark.createDataFrame(pages, PAGE_SCHEMA)
    frame.repartition(4).write.parquet(str(root / "even" / "pages"))
    frame.coalesce(1).write.parquet(str(root / "one" / "pages"))
    config = ExtractConfig(split_mb=0.06)
    with session_conf(spark, step_conf(config)):
        even = scan_task_sizes(spark.read.parquet(str(root / "even" / "pages")))
        one = scan_task_sizes(spark.read.parquet(str(root / "one" / "pages")))
    assert sorted(even) == [10, 10, 10, 10] and splits_evenly(even, cores=2)
    assert one == [40] and not splits_evenly(one, cores=2)
    results = {}
    for name in ("even", "one"):
        spreads.clear()
        stats = extract_documents(spark, root / name, config, tmp_path / f"out-{name}")
        docs = spark.read.parquet(str(tmp_path / f"out-{name}" / "docs")).collect()
        results[name] = stats, sorted((row["id"], row["text"]) for row in docs)
        assert spreads == ([] if name == "even" else [config.partitions])  # shuffled or not
    assert results["even"] == results["one"]
    assert results["even"][0]["kept"] == 40
