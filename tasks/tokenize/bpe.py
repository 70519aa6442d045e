"""Train a byte-level BPE tokenizer (HF `tokenizers`) on a deterministic sample of documents.

Byte-level pre-tokenisation without a prefix space, a byte-level decoder and no normaliser make
`decode(encode(text)) == text` hold for every string. The sample is the `train_docs` documents
with the smallest sha256(id), chosen in Spark; only their text travels to the driver, streamed
one partition at a time, so the same input and config always give the same tokenizer file.
`use_tokenizer_file` instead takes an existing `tokenizer.json` (checked, copied byte for byte).
The special tokens and how a tokenizer is loaded for encoding are model/tokenizer.py's.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from model.files import sha256_file
from model.tokenizer import EOT, SPECIAL_TOKENS, TOKENIZER_CONFIG, end_of_text, load_tokenizer
from tasks.config import TokenizeConfig


def new_tokenizer() -> Tokenizer:
    """An untrained byte-level BPE whose decode inverts encode exactly (no normaliser)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def documents_frame(spark: SparkSession, docs_uri: str) -> DataFrame:
    """All curated document records of `docs_uri`, or a clear error when id or text is missing."""
    frame = spark.read.parquet(docs_uri)
    missing = {"id", "text"} - set(frame.columns)
    if missing:
        raise ValueError(
            f"{docs_uri} has no column(s) {sorted(missing)}: expected curated document records "
            "(id, url, source, title, text, ...); re-run the curate step"
        )
    return frame


def no_documents_error(docs_uri: str) -> ValueError:
    """The error for a corpus without a single non-empty text."""
    return ValueError(
        f"no documents with text in {docs_uri}: the tokenizer needs a corpus; check the "
        "crawl/curate stats (everything may have been dropped) and re-run those steps"
    )


def read_documents_frame(spark: SparkSession, docs_uri: str) -> DataFrame:
    """The curated documents with non-empty text, or a clear error when there are none."""
    frame = documents_frame(spark, docs_uri)
    frame = frame.where(F.col("text").isNotNull() & (F.length("text") > 0))
    if frame.limit(1).count() == 0:
        raise no_documents_error(docs_uri)
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
        **describe_tokenizer(out_path),
        "requested_vocab_size": config.vocab_size,
        "train_docs": counted["docs"],
        "train_chars": counted["chars"],
    }


def use_tokenizer_file(source: Path | str, out_path: Path) -> dict[str, Any]:
    """Check an existing tokenizer.json (has an end-of-text token, decodes its own output
    exactly) and copy it byte for byte to `out_path`, so the recorded sha256 is that of the
    given file; an imported model's `tokenizer_config.json` beside it (which names its
    end-of-text token, model/tokenizer.py:end_of_text) is copied along."""
    source = Path(source)
    hint = (
        "set tokenize.tokenizer_file to a tokenizer.json with <|endoftext|> (or an imported "
        'model\'s, with its tokenizer_config.json beside it), or to "" to train one'
    )
    if not source.is_file():
        raise ValueError(f"tokenize.tokenizer_file {source} does not exist: {hint}")
    try:
        tokenizer = load_tokenizer(source)
    except Exception as error:  # tokenizers raises a bare Exception for a malformed file
        raise ValueError(f"{source} is not a readable tokenizer.json ({error}): {hint}") from error
    try:
        end = end_of_text(source)
    except ValueError as error:
        raise ValueError(f"{error}: {hint}") from None
    probe = f"Exact round trip?\r\n  naïve café 日本語 🎉\t{EOT}"
    if tokenizer.decode(tokenizer.encode(probe).ids, skip_special_tokens=False) != probe:
        raise ValueError(
            f"{source} does not decode its own tokens back to the text (a normaliser or a "
            f"non-byte-level model), so shards could not be decoded exactly: {hint}"
        )
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, out_path)
    side = source.with_name(TOKENIZER_CONFIG)
    if side.is_file():
        shutil.copyfile(side, out_path.with_name(TOKENIZER_CONFIG))
    described = describe_tokenizer(out_path)
    return {**described, "source": str(source.resolve()), "train_docs": 0, "eot_token": end}


def describe_tokenizer(path: Path) -> dict[str, Any]:
    """File name, sha256, vocabulary size and special-token ids of a saved tokenizer."""
    tokenizer = load_tokenizer(path)
    present = {t: tokenizer.token_to_id(t) for t in SPECIAL_TOKENS}
    return {
        "tokenizer_file": path.name,
        "tokenizer_sha256": sha256_file(path),
        "vocab_size": tokenizer.get_vocab_size(),
        "special_tokens": {t: i for t, i in present.items() if i is not None},
        "eot_id": tokenizer.token_to_id(end_of_text(path)),
    }
