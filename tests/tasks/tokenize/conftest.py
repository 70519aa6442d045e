"""Tiny curated-document folders for the tokenize tests."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest


def doc_id(url: str) -> str:
    """The id a crawled page gets: sha256 hex of its url."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def write_docs_parquet(folder: Path, texts: list[str]) -> str:
    """Curated-style document records for `texts`, url `https://example.org/<i>`, as Parquet."""
    urls = [f"https://example.org/{i}" for i in range(len(texts))]
    table = pa.table(
        {
            "id": [doc_id(url) for url in urls],
            "url": urls,
            "source": ["web"] * len(texts),
            "title": [f"page {i}" for i in range(len(texts))],
            "text": texts,
        }
    )
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / "part-00000.parquet")
    return str(folder)


@pytest.fixture(scope="session")
def write_docs() -> Callable[[Path, list[str]], str]:
    """`write_docs(folder, texts) -> docs_uri`."""
    return write_docs_parquet
