"""Books: Project Gutenberg-style `.txt` files from a folder, as document records.

The Project Gutenberg header (title, author, licence preamble) and footer (licence) are cut
at the `*** START OF THE/THIS PROJECT GUTENBERG EBOOK ... ***` and `*** END OF ...` lines;
both marker styles occur, the END line may be indented. A file without markers is kept
whole, titled by its file name. UTF-8 BOM and CRLF line ends are removed.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from pyspark.sql import SparkSession

from tasks.crawl.records import DOCUMENT_SCHEMA, document_id

START = re.compile(r"^[ \t]*\*{3} ?START OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK.*$", re.M | re.I)
END = re.compile(r"^[ \t]*\*{3} ?END OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK.*$", re.M | re.I)
# Older books repeat the end in prose just above the END marker.
END_PROSE = re.compile(r"\n[ \t]*End of (?:the )?Project Gutenberg.*\s*$", re.I)
HEADER_FIELD = re.compile(r"^(Title|Author|Language):[ \t]*(.+?)[ \t]*$", re.M)
EBOOK_NUMBER = re.compile(r"\[E-?Book #(\d+)\]", re.I)


def parse_gutenberg(raw: str, fallback_title: str) -> tuple[str, dict[str, str]]:
    """Cut the Gutenberg header and footer; return (body, fields). `fields` has 'title' (the
    header's, else `fallback_title`) and 'author', 'language', 'gutenberg_id' if given."""
    text = raw.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    meta: dict[str, str] = {"title": fallback_title}
    start = START.search(text)
    if start is None:
        return text.strip(), meta
    header, body = text[: start.start()], text[start.end() :]
    for key, value in HEADER_FIELD.findall(header):
        meta[key.lower()] = value
    number = EBOOK_NUMBER.search(header)
    if number:
        meta["gutenberg_id"] = number.group(1)
    end = END.search(body)
    if end is not None:
        body = END_PROSE.sub("", body[: end.start()])
    return body.strip(), meta


def book_record(path: str, ingested_at: str) -> tuple:
    """Read one book file; return a row in `DOCUMENT_SCHEMA` order (no language yet)."""
    file = Path(path)
    raw = file.read_bytes().decode("utf-8", errors="replace")
    body, fields = parse_gutenberg(raw, fallback_title=file.stem)
    title = fields.pop("title")
    meta = {"file": file.name, "chars": str(len(body)), **fields}
    doc_id = document_id(f"book:{file.name}")
    return (doc_id, file.resolve().as_uri(), "book", title, body, None, None, ingested_at, meta)


def ingest_books(spark: SparkSession, books_dir: str, out_dir: Path) -> int:
    """Write every `*.txt` in `books_dir` to `out_dir` as document records (source 'book');
    return how many. An empty `books_dir` means no books."""
    if not books_dir:
        return 0
    folder = Path(books_dir)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"crawl.books_dir {books_dir!r} is not a folder; set it to a folder of .txt books "
            "or to '' for none"
        )
    paths = sorted(str(p.resolve()) for p in folder.glob("*.txt"))
    if not paths:
        return 0
    ingested_at = datetime.now(UTC).isoformat(timespec="seconds")
    rows = spark.sparkContext.parallelize(paths, min(len(paths), 8)).map(
        lambda path: book_record(path, ingested_at)
    )
    spark.createDataFrame(rows, DOCUMENT_SCHEMA).write.parquet(str(out_dir))
    return len(paths)
