"""Tiny curated-document folders and tokenizer files for the tokenize tests."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tokenizers import pre_tokenizers, trainers

from model.tokenizer import SPECIAL_TOKENS
from tasks.tokenize.bpe import new_tokenizer


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


def save_tokenizer_file(path: Path, texts: list[str], vocab_size: int = 400) -> Path:
    """Train the pipeline's kind of byte-level BPE on `texts` in process and save it to `path`."""
    tokenizer = new_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    path.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(path))
    return path


@pytest.fixture(scope="session")
def save_tokenizer() -> Callable[[Path, list[str]], Path]:
    """`save_tokenizer(path, texts) -> path`: a tokenizer.json made without Spark."""
    return save_tokenizer_file
