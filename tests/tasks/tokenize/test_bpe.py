"""Byte-level BPE training: exact round trips, special tokens, a deterministic sample."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from model.files import sha256_file
from model.tokenizer import SPECIAL_TOKENS, load_tokenizer
from tasks.config import TokenizeConfig
from tasks.tokenize.bpe import train_tokenizer

DocsWriter = Callable[[Path, list[str]], str]

TRICKY = [
    "plain ascii text",
    "  leading spaces and trailing   ",
    "tabs\tand\t\ttabs, runs of     spaces",
    "CRLF line\r\nendings\r\n\r\nand a lone \r carriage return",
    "unicode: naïve café, Straße, Ελληνικά, русский, 日本語のテキスト, עברית",
    "emoji 🎉🚀 with ZWJ 👩‍👩‍👧‍👦 and flags 🇫🇷 and skin tone 👍🏽",
    "\ufeffbyte order mark, NBSP\u00a0, zero width\u200bspace, combining e\u0301",
    "special text <|endoftext|> and <|user|> stays text",
    "",
    "\n\n\n",
    "x" * 500,
]


CORPUS = [f"{t} — document {i} about tokenizers." for i, t in enumerate(TRICKY * 3)] + [""]
CONFIG = TokenizeConfig(vocab_size=320, min_frequency=2, train_docs=100)


@pytest.fixture(scope="module")
def trained(
    spark, tmp_path_factory: pytest.TempPathFactory, write_docs: DocsWriter
) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("bpe")
    docs = write_docs(root / "docs", CORPUS)
    info = train_tokenizer(spark, docs, CONFIG, root / "out" / "tokenizer.json")
    return root / "out" / "tokenizer.json", info


def test_round_trip_on_tricky_strings(trained: tuple[Path, dict]) -> None:
    tokenizer = load_tokenizer(trained[0])
    for text in TRICKY:
        ids = tokenizer.encode(text).ids
        assert tokenizer.decode(ids, skip_special_tokens=False) == text, repr(text)


def test_special_token_strings_in_text_are_not_special(trained: tuple[Path, dict]) -> None:
    path, info = trained
    ids = load_tokenizer(path).encode("a <|endoftext|> b <|user|>").ids
    assert not set(ids) & set(info["special_tokens"].values())


def test_info_describes_the_saved_tokenizer(trained: tuple[Path, dict]) -> None:
    path, info = trained
    assert info["tokenizer_sha256"] == sha256_file(path)
    assert info["vocab_size"] == load_tokenizer(path).get_vocab_size() <= CONFIG.vocab_size
    assert list(info["special_tokens"]) == SPECIAL_TOKENS
    assert info["eot_id"] == info["special_tokens"]["<|endoftext|>"]
    assert info["train_docs"] == len(CORPUS) - 1  # the empty document is skipped


def test_sample_is_deterministic_and_capped(spark, tmp_path: Path, write_docs: DocsWriter) -> None:
    docs = write_docs(tmp_path / "docs", CORPUS)
    small = TokenizeConfig(vocab_size=300, min_frequency=1, train_docs=5)
    first = train_tokenizer(spark, docs, small, tmp_path / "a" / "tokenizer.json")
    second = train_tokenizer(spark, docs, small, tmp_path / "b" / "tokenizer.json")
    assert first["train_docs"] == 5
    assert first["tokenizer_sha256"] == second["tokenizer_sha256"]


def test_no_documents_is_a_clear_error(spark, tmp_path: Path, write_docs: DocsWriter) -> None:
    docs = write_docs(tmp_path / "docs", ["", ""])
    with pytest.raises(ValueError, match="no documents with text in"):
        train_tokenizer(spark, docs, CONFIG, tmp_path / "tokenizer.json")


def test_round_trip_on_real_books(
    spark, shared_corpus: Path, tmp_path: Path, write_docs: DocsWriter
) -> None:
    books = sorted((shared_corpus / "books").glob("*.txt"))
    texts = [book.read_text(encoding="utf-8") for book in books]  # BOM and CRLF kept
    docs = write_docs(tmp_path / "docs", texts)
    config = TokenizeConfig(vocab_size=1024, min_frequency=2, train_docs=len(texts))
    info = train_tokenizer(spark, docs, config, tmp_path / "tokenizer.json")
    tokenizer = load_tokenizer(tmp_path / "tokenizer.json")
    assert info["vocab_size"] == 1024
    for book, text in zip(books, texts, strict=True):
        ids = tokenizer.encode(text).ids
        assert len(ids) < len(text.encode("utf-8")) / 2, book.name  # BPE actually compresses
        assert tokenizer.decode(ids) == text, book.name
