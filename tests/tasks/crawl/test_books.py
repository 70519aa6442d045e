"""Gutenberg-style books: header and footer cut for both marker styles, as document records."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.config import CrawlConfig
from tasks.crawl.books import ingest_book_urls, ingest_books, parse_gutenberg
from tasks.crawl.pydoc_site import serve_site
from tasks.crawl.records import document_id

OLD_STYLE = (
    "\ufeffThe Project Gutenberg EBook of Tiny Tales, by Ann Author\r\n\r\n"
    "Title: Tiny Tales\r\n\r\nAuthor: Ann Author\r\n\r\n"
    "Posting Date: June 25, 2008 [EBook #99999]\r\nLanguage: English\r\n\r\n"
    "*** START OF THIS PROJECT GUTENBERG EBOOK TINY TALES ***\r\n\r\n\r\n"
    "Once upon a time.\r\n\r\nThe end.\r\n\r\n\r\n"
    "End of the Project Gutenberg EBook of Tiny Tales, by Ann Author\r\n\r\n"
    "*** END OF THIS PROJECT GUTENBERG EBOOK TINY TALES ***\r\n\r\n"
    "***** This file should be named 99999.txt *****\r\nFull licence text.\r\n"
)
NEW_STYLE = (
    "\ufeffThe Project Gutenberg eBook of Short Stories\r\n    \r\n"
    "Title: Short Stories\r\n\r\n\r\nAuthor: Bo Writer\r\n\r\n"
    "Release date: March 1, 1999 [eBook #12345]\r\n\r\n"
    "*** START OF THE PROJECT GUTENBERG EBOOK SHORT STORIES ***\r\n\r\n"
    "Chapter one.\r\n  Indented line kept.\r\n\r\n"
    "            *** END OF THE PROJECT GUTENBERG EBOOK SHORT STORIES ***\r\n"
    "Updated editions will replace the previous one.\r\n"
)


def test_old_marker_style_with_end_prose() -> None:
    body, fields = parse_gutenberg(OLD_STYLE, "fallback")
    assert body == "Once upon a time.\n\nThe end."
    assert fields == {
        "title": "Tiny Tales",
        "author": "Ann Author",
        "language": "English",
        "gutenberg_id": "99999",
    }


def test_new_marker_style_with_indented_end() -> None:
    body, fields = parse_gutenberg(NEW_STYLE, "fallback")
    assert body == "Chapter one.\n  Indented line kept."
    assert fields["title"] == "Short Stories" and fields["author"] == "Bo Writer"
    assert fields["gutenberg_id"] == "12345"


def test_text_without_markers_is_kept_whole() -> None:
    body, fields = parse_gutenberg("First Citizen:\r\nSpeak, speak.\r\n", "tinyshakespeare")
    assert body == "First Citizen:\nSpeak, speak."
    assert fields == {"title": "tinyshakespeare"}


def test_real_gutenberg_books(shared_corpus: Path) -> None:
    books = shared_corpus / "books"
    expected = {
        "11-0.txt": ("Alice’s Adventures in Wonderland", "Lewis Carroll", "THE END"),
        "pg1342.txt": ("Pride and Prejudice", "Jane Austen", "LONDON."),
        "pg1661.txt": ("The Adventures of Sherlock Holmes", "Arthur Conan Doyle", "success."),
    }
    for name, (title, author, last_words) in expected.items():
        body, fields = parse_gutenberg((books / name).read_text(encoding="utf-8"), name)
        assert (fields["title"], fields["author"]) == (title, author)
        assert "project gutenberg" not in body.lower(), name
        assert "\r" not in body and not body.startswith("\ufeff")
        assert body.endswith(last_words), name


def test_ingest_books_writes_document_records(spark, tmp_path: Path) -> None:
    folder = tmp_path / "books"
    folder.mkdir()
    (folder / "tiny.txt").write_bytes(OLD_STYLE.encode("utf-8"))
    (folder / "plain.txt").write_text("No header at all, just text.\n")
    (folder / "ignored.md").write_text("not a .txt file")
    assert ingest_books(spark, str(folder), tmp_path / "out") == 2
    rows = {r["title"]: r for r in spark.read.parquet(str(tmp_path / "out")).collect()}
    assert set(rows) == {"Tiny Tales", "plain"}
    tiny = rows["Tiny Tales"]
    assert tiny["id"] == document_id("book:tiny.txt") and tiny["source"] == "book"
    assert tiny["text"] == "Once upon a time.\n\nThe end."
    assert tiny["meta"]["author"] == "Ann Author" and tiny["meta"]["file"] == "tiny.txt"
    assert tiny["lang"] is None and tiny["url"].startswith("file:///")


def test_ingest_books_needs_an_existing_folder(spark, tmp_path: Path) -> None:
    assert ingest_books(spark, "", tmp_path / "none") == 0
    with pytest.raises(FileNotFoundError, match="crawl.books_dir"):
        ingest_books(spark, str(tmp_path / "missing"), tmp_path / "out")


def test_licence_block_ends_a_book_without_an_end_marker() -> None:
    text = OLD_STYLE.replace("*** END OF THIS PROJECT GUTENBERG EBOOK TINY TALES ***", "")
    text = text.replace("***** This file", "*** START: FULL LICENSE ***\r\n***** This file")
    body, _ = parse_gutenberg(text, "fallback")
    assert body == "Once upon a time.\n\nThe end."


def test_tinyshakespeare_has_no_header_and_is_kept_whole(shared_corpus: Path) -> None:
    raw = (shared_corpus / "books" / "tinyshakespeare.txt").read_text(encoding="utf-8")
    body, fields = parse_gutenberg(raw, "tinyshakespeare")
    assert fields == {"title": "tinyshakespeare"} and body == raw.strip()


def test_book_urls_are_fetched_politely_and_failures_accounted(
    spark, shared_corpus: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "11-0.txt").write_bytes((shared_corpus / "books" / "11-0.txt").read_bytes())
    (site / "robots.txt").write_text("User-agent: *\nDisallow: /private/\n")
    with serve_site(site) as root:
        urls = [root + "11-0.txt", root + "missing.txt", root + "private/book.txt"]
        config = CrawlConfig(book_urls=urls, allow_private_hosts=["127.0.0.1"], max_retries=0)
        stats = ingest_book_urls(spark, config, tmp_path / "books")
    assert stats == {"book_urls": 3, "book_url_errors": 2}
    rows = {r["url"]: r for r in spark.read.parquet(str(tmp_path / "books")).collect()}
    alice = rows[root + "11-0.txt"]
    assert alice["title"] == "Alice’s Adventures in Wonderland" and alice["source"] == "book"
    assert alice["text"].endswith("THE END") and alice["id"] == document_id(f"book:{root}11-0.txt")
    assert rows[root + "missing.txt"]["meta"]["fetch_error"].endswith("http 404")
    assert "robots" in rows[root + "private/book.txt"]["meta"]["fetch_error"]
    assert rows[root + "missing.txt"]["text"] is None
