"""Train a byte-level BPE tokenizer (HF `tokenizers`) on a deterministic sample of documents.

Byte-level pre-tokenisation without a prefix space, a byte-level decoder and no normaliser make
`decode(encode(text)) == text` hold for every string. The sample is the `train_docs` documents
with the smallest sha256(id), chosen in Spark; only their text travels to the driver, streamed
one partition at a time, so the same input and config always give the same tokenizer file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from tasks.config import TokenizeConfig

EOT = "<|endoftext|>"
PAD = "<|pad|>"
CHAT_TOKENS = ["<|user|>", "<|assistant|>", "<|system|>", "<|end|>"]
SPECIAL_TOKENS = [EOT, PAD, *CHAT_TOKENS]


def new_tokenizer() -> Tokenizer:
    """An untrained byte-level BPE whose decode inverts encode exactly (no normaliser)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def load_tokenizer(path: Path | str) -> Tokenizer:
    """A trained tokenizer for encoding document text: special-token strings in the text stay
    plain text, so a document that quotes `<|endoftext|>` cannot forge a document boundary."""
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.encode_special_tokens = True
    return tokenizer


def file_sha256(path: Path | str) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def read_documents_frame(spark: SparkSession, docs_uri: str) -> DataFrame:
    """The curated documents with non-empty text, or a clear error when there are none."""
    frame = spark.read.parquet(docs_uri)
    missing = {"id", "text"} - set(frame.columns)
    if missing:
        raise ValueError(
            f"{docs_uri} has no column(s) {sorted(missing)}: expected curated document records "
            "(id, url, source, title, text, ...); re-run the curate step"
        )
    frame = frame.where(F.col("text").isNotNull() & (F.length("text") > 0))
    if frame.limit(1).count() == 0:
        raise ValueError(
            f"no documents with text in {docs_uri}: the tokenizer needs a corpus; check the "
            "crawl/curate stats (everything may have been dropped) and re-run those steps"
        )
    return frame


def sample_texts(frame: DataFrame, limit: int) -> Iterator[str]:
    """Texts of the `limit` documents with the smallest sha256(id), in that order."""
    sample = (
        frame.withColumn("_key", F.sha2(F.col("id"), 256))
        .orderBy("_key", "id")
        .limit(limit)
        .select("text")
    )
    for row in sample.toLocalIterator():
        yield row.text


def train_tokenizer(
    spark: SparkSession, docs_uri: str, config: TokenizeConfig, out_path: Path
) -> dict[str, Any]:
    """Train BPE on at most `config.train_docs` documents of `docs_uri`; save it to `out_path`."""
    if config.train_docs < 1:
        raise ValueError(f"tokenize.train_docs must be >= 1, got {config.train_docs}")
    frame = read_documents_frame(spark, docs_uri)
    trainer = trainers.BpeTrainer(
        vocab_size=config.vocab_size,
        min_frequency=config.min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    counted = {"docs": 0, "chars": 0}

    def counting(texts: Iterator[str]) -> Iterator[str]:
        for text in texts:
            counted["docs"] += 1
            counted["chars"] += len(text)
            yield text

    tokenizer = new_tokenizer()
    tokenizer.train_from_iterator(counting(sample_texts(frame, config.train_docs)), trainer)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(out_path))
    return {
        "tokenizer_file": out_path.name,
        "tokenizer_sha256": file_sha256(out_path),
        "vocab_size": tokenizer.get_vocab_size(),
        "requested_vocab_size": config.vocab_size,
        "special_tokens": {t: tokenizer.token_to_id(t) for t in SPECIAL_TOKENS},
        "eot_id": tokenizer.token_to_id(EOT),
        "train_docs": counted["docs"],
        "train_chars": counted["chars"],
    }
