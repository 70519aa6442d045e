"""The extract step in Spark: every page and book ends up kept or dropped with a reason."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyarrow as pa
import pytest
from pyspark.sql import Row

from tasks.config import ExtractConfig
from tasks.crawl.records import DOCUMENT_SCHEMA, PAGE_SCHEMA, document_id
from tasks.extract.extract import (
    JUDGED_ARROW,
    KEPT_ARROW,
    extract_documents,
    judge_documents,
    judge_text,
    page_text,
)

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
        "input_news": 0,
        "input_books": 2,
        "input_dumps": 0,
        "input_social": 0,
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


def forty_pages() -> list[tuple]:
    return [  # random bytes: ~50 kB of HTML each
        page(f"p{i}.html", 200, None, "text/html", os.urandom(2000).hex() + PROSE)
        for i in range(40)
    ]


def test_work_items_are_row_groups_sliced_when_large(spark, tmp_path: Path) -> None:
    """Counts come from the footers; a row group is an item, cut when it holds more than
    1/pieces of the records; largest first; hidden files are not input."""
    from tasks.extract.extract import plan_work

    frame = spark.createDataFrame(forty_pages(), PAGE_SCHEMA)
    frame.repartition(4).write.parquet(str(tmp_path / "even" / "pages"))
    frame.coalesce(1).write.parquet(str(tmp_path / "one" / "pages"))
    (tmp_path / "one" / "pages" / "_hidden.parquet").write_bytes(b"not parquet")

    items, counts = plan_work(tmp_path / "even", ["pages"], pieces=2)
    assert counts["input_pages"] == 40 and sorted(i.stop - i.start for i in items) == [10] * 4
    assert len({item.path for item in items}) == 4
    items, counts = plan_work(tmp_path / "one", ["pages"], pieces=6)  # slices of <= 7
    assert counts == {
        "input_pages": 40,
        "input_warc": 0,
        "input_news": 0,
        "input_books": 0,
        "input_dumps": 0,
        "input_social": 0,
    }
    assert [(i.start, i.stop) for i in items] == [(s, min(s + 7, 40)) for s in range(0, 40, 7)]
    assert {(item.folder, item.row_group) for item in items} == {("pages", 0)}


def test_the_same_records_whatever_the_work_items(spark, tmp_path: Path) -> None:
    """Four files, one file in 8 slices, in 2 x cores slices: the same documents (folder name
    with a space); each task's part file holds its records in input order."""
    frame = spark.createDataFrame(forty_pages(), PAGE_SCHEMA)
    root = tmp_path / "with space"
    frame.repartition(4).write.parquet(str(root / "even" / "pages"))
    frame.coalesce(1).write.parquet(str(root / "one" / "pages"))
    results = {}
    for name, config in (
        ("even", ExtractConfig()),
        ("one", ExtractConfig()),  # 40 records, 8 pieces: slices of 5
        ("one", ExtractConfig(partitions=1)),
    ):
        out = tmp_path / f"out-{name}-{config.partitions}"
        stats = extract_documents(spark, root / name, config, out)
        parts = sorted((out / "docs").glob("part-*.parquet"))
        docs = spark.read.parquet(str(out / "docs")).collect()
        results[name, config.partitions] = stats, sorted((row["id"], row["text"]) for row in docs)
        if name == "one":  # cut in max(partitions, 2 x cores) slices
            pieces = max(config.partitions, 2 * spark.sparkContext.defaultParallelism)
            assert len(parts) == pieces
    assert results["even", 8] == results["one", 8] == results["one", 1]
    assert results["even", 8][0]["kept"] == 40
    first = spark.read.parquet(str(tmp_path / "out-one-8" / "docs" / "part-00000.parquet"))
    assert [row["url"] for row in first.collect()] == [BASE + f"p{i}.html" for i in range(5)]


def test_an_unreadable_input_file_is_named(spark, tmp_path: Path) -> None:
    (tmp_path / "crawl" / "pages").mkdir(parents=True)
    (tmp_path / "crawl" / "pages" / "part-0.parquet").write_bytes(b"truncated")
    with pytest.raises(ValueError, match=r"part-0.parquet is not a readable Parquet file.*crawl"):
        extract_documents(spark, tmp_path / "crawl", ExtractConfig(), tmp_path / "out")


def test_an_empty_crawl_gives_readable_empty_outputs(spark, tmp_path: Path) -> None:
    spark.createDataFrame([], PAGE_SCHEMA).write.parquet(str(tmp_path / "crawl" / "pages"))
    stats = extract_documents(spark, tmp_path / "crawl", ExtractConfig(), tmp_path / "out")
    assert stats["input_pages"] == 0 and stats["kept"] == 0
    assert spark.read.parquet(str(tmp_path / "out" / "docs")).count() == 0
    dropped = spark.read.parquet(str(tmp_path / "out" / "dropped"))
    assert dropped.count() == 0 and dropped.columns[-1] == "drop_reason"


def test_work_items_read_every_record_once_in_order(spark, tmp_path: Path, monkeypatch) -> None:
    """Row groups of 7 read in batches of 3, some groups whole and some cut: every record once."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import tasks.extract.extract as extract

    rows = [dict(zip(PAGE_SCHEMA.names, record, strict=True)) for record in forty_pages()]
    (tmp_path / "crawl" / "pages").mkdir(parents=True)
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, tmp_path / "crawl" / "pages" / "part-0.parquet", row_group_size=7)
    monkeypatch.setattr(extract, "BATCH_ROWS", 3)
    items, counts = extract.plan_work(tmp_path / "crawl", ["pages"], pieces=8)  # slices of <= 5
    assert counts["input_pages"] == 40 and {item.row_group for item in items} == set(range(6))
    assert sorted((i.row_group, i.start, i.stop) for i in items)[:3] == [
        (0, 0, 5),
        (0, 5, 7),
        (1, 0, 5),
    ]
    assert (5, 0, 5) in {(i.row_group, i.start, i.stop) for i in items}  # the last group is whole
    read = []
    for item in sorted(items, key=lambda item: (item.row_group, item.start)):
        for batch in extract.read_item(item):
            assert batch.num_rows <= 3
            read += batch.column("url").to_pylist()
    assert read == [row["url"] for row in rows]


def test_a_failing_task_leaves_no_part_file(spark, tmp_path: Path, monkeypatch) -> None:
    """A task that fails half-way (the judge, after a first batch was written) removes what it
    had written; a part appears only complete. A retry removes the earlier attempt's part when
    it has nothing to put there."""
    import tasks.extract.extract as extract

    spark.createDataFrame(forty_pages(), PAGE_SCHEMA).coalesce(1).write.parquet(
        str(tmp_path / "crawl" / "pages")
    )
    [item], _ = extract.plan_work(tmp_path / "crawl", ["pages"], pieces=1)
    out = tmp_path / "out"
    for name in ("docs", "dropped"):
        (out / name).mkdir(parents=True)
    calls = []

    def breaks_on_the_second_batch(records, config):
        calls.append(len(records))
        if len(calls) == 2:
            raise OSError("disk full")
        yield from extract.judge_pages(records, config)

    monkeypatch.setattr(extract, "BATCH_ROWS", 10)
    monkeypatch.setitem(extract.JUDGES, "pages", breaks_on_the_second_batch)
    with pytest.raises(OSError, match="disk full"):
        extract.judge_item(item, 0, ExtractConfig(), str(out))
    assert calls == [10, 10]  # the first batch was written before the failure
    assert list((out / "docs").iterdir()) == [] and list((out / "dropped").iterdir()) == []
    monkeypatch.setitem(extract.JUDGES, "pages", extract.judge_pages)
    assert extract.judge_item(item, 0, ExtractConfig(), str(out)) == {"lang:en": 40}
    assert [p.name for p in (out / "docs").iterdir()] == ["part-00000.parquet"]
    # a retry (attempt 1 here) that keeps nothing: attempt 0's kept part must not survive
    assert extract.judge_item(item, 0, ExtractConfig(min_chars=10**6), str(out)) == {
        "drop:too_short": 40
    }
    assert list((out / "docs").iterdir()) == []
    assert [p.name for p in (out / "dropped").iterdir()] == ["part-00000.parquet"]


def test_an_output_folder_in_use_is_refused(spark, crawl_dir, tmp_path: Path) -> None:
    (tmp_path / "out" / "docs").mkdir(parents=True)
    with pytest.raises(FileExistsError, match=r"out/docs already exists"):
        extract_documents(spark, crawl_dir, ExtractConfig(), tmp_path / "out")


def test_the_judged_layout_follows_the_document_schema() -> None:
    """The Arrow schema derived from DOCUMENT_SCHEMA is the one the step has always written."""
    written = pa.schema(
        [(name, pa.string()) for name in ("id", "url", "source", "title", "text", "lang")]
        + [("lang_score", pa.float64()), ("fetched_at", pa.string())]
        + [("meta", pa.map_(pa.string(), pa.string())), ("drop_reason", pa.string())]
    )
    assert JUDGED_ARROW.equals(written, check_metadata=True)
    assert KEPT_ARROW.names == DOCUMENT_SCHEMA.names
    book = dict.fromkeys(DOCUMENT_SCHEMA.names) | {"id": "b", "source": "book", "text": "x"}
    [judged] = judge_documents([book], ExtractConfig(min_chars=10))
    assert list(judged) == JUDGED_ARROW.names and judged["drop_reason"] == "too_short"
