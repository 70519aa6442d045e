"""Encode curated documents into binary token shards with Spark (format: model/token_format.py).

Each document goes to a split by a fixed hash rule (`split_of`) and to one of `partitions`
contiguous ranges of sha256(id) (`partition_of`); within a partition the documents are sorted by
(split, id). Neither depends on the cluster, the input file layout or a sampling seed (which is
why this does not use `repartitionByRange`), so the same documents and config give byte-identical
shards. Each executor loads the tokenizer once, encodes in batches, appends the end-of-text id to
every document and writes its own shards of about `shard_tokens` tokens straight into `out_dir`;
only file names, counts and checksums come back to the driver, which writes `manifest.json`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from pyspark import Broadcast, TaskContext
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from tokenizers import Tokenizer

from model.token_format import (
    FORMAT_VERSION,
    HEADER_BYTES,
    INDEX_DTYPE,
    MAGIC,
    TOKEN_DTYPES,
    ShardHeader,
    index_path,
    token_width,
)
from tasks.config import TokenizeConfig
from tasks.tokenize.bpe import EOT, file_sha256, read_documents_frame

SPLITS = ("train", "val")
SPLIT_BUCKETS = 10_000
ENCODE_BATCH_DOCS = 256
SPLIT_RULE = "val if int(sha256(id.encode('utf-8')).hexdigest()[:8], 16) % 10000 < {threshold}"


def split_of(doc_id: str, threshold: int) -> str:
    """'val' for the documents whose id hashes below `threshold` of 10000 buckets, else 'train'."""
    bucket = int(hashlib.sha256(doc_id.encode("utf-8")).hexdigest()[:8], 16) % SPLIT_BUCKETS
    return "val" if bucket < threshold else "train"


def partition_of(doc_id: str, partitions: int) -> int:
    """Which of `partitions` equal hash ranges holds `doc_id` (other hash bits than the split's)."""
    return (int(hashlib.sha256(doc_id.encode("utf-8")).hexdigest()[8:16], 16) * partitions) >> 32


class _OpenShard:
    """One shard being written under a temporary name: header placeholder, tokens, offsets."""

    def __init__(self, out_dir: Path, name: str, split: str, dtype: np.dtype, attempt: int):
        self.path, self.split, self.dtype = out_dir / name, split, dtype
        self.tmp = out_dir / f".{name}.attempt{attempt}"
        self.handle = open(self.tmp, "wb")
        self.handle.write(bytes(HEADER_BYTES))
        self.offsets: list[int] = []
        self.tokens = 0

    def add(self, ids: np.ndarray) -> None:
        self.offsets.append(self.tokens)
        self.handle.write(ids.astype(self.dtype).tobytes())
        self.tokens += len(ids)

    def finish(self, vocab_size: int, eot_id: int) -> dict[str, Any]:
        """Write header and index, publish both by rename; return the manifest entry."""
        header = ShardHeader(
            self.dtype.itemsize, vocab_size, self.tokens, len(self.offsets), eot_id
        )
        self.handle.seek(0)
        self.handle.write(header.to_bytes())
        self.handle.close()
        idx_tmp = self.tmp.with_suffix(".idx")
        np.asarray(self.offsets, dtype=INDEX_DTYPE).tofile(idx_tmp)
        # rename last: a retried or speculative task never leaves a half-written shard in place
        os.replace(idx_tmp, index_path(self.path))
        os.replace(self.tmp, self.path)
        return {
            "file": self.path.name,
            "index": index_path(self.path).name,
            "split": self.split,
            "tokens": self.tokens,
            "docs": len(self.offsets),
            "sha256": file_sha256(self.path),
            "index_sha256": file_sha256(index_path(self.path)),
        }


def _write_partition(
    partition: int,
    records: Iterable[tuple[tuple[int, str, str, str], None]],
    *,
    out_dir: str,
    tokenizer_json: Broadcast[str],
    shard_tokens: int,
) -> Iterator[dict[str, Any]]:
    """Executor side: encode one partition's sorted documents into shards; yield their entries."""
    tokenizer = Tokenizer.from_str(tokenizer_json.value)
    tokenizer.encode_special_tokens = True  # document text cannot forge an end-of-text id
    vocab_size, eot_id = tokenizer.get_vocab_size(), tokenizer.token_to_id(EOT)
    dtype = TOKEN_DTYPES[token_width(vocab_size)]
    context = TaskContext.get()
    attempt = context.attemptNumber() if context else 0
    seq = dict.fromkeys(SPLITS, 0)
    shard: _OpenShard | None = None
    records = iter(records)
    while batch := [key for key, _ in islice(records, ENCODE_BATCH_DOCS)]:
        encodings = tokenizer.encode_batch([text for _, _, _, text in batch])
        for (_, split, _, _), encoding in zip(batch, encodings, strict=True):
            ids = np.array([*encoding.ids, eot_id])
            # a new shard per split, and before a document that would overfill this one
            if shard is not None and (
                shard.split != split or shard.tokens + len(ids) > shard_tokens
            ):
                yield shard.finish(vocab_size, eot_id)
                shard = None
            if shard is None:
                name = f"{split}-p{partition:05d}-{seq[split]:05d}.bin"
                shard = _OpenShard(Path(out_dir), name, split, dtype, attempt)
                seq[split] += 1
            shard.add(ids)
    if shard is not None:
        yield shard.finish(vocab_size, eot_id)


def _check_config(config: TokenizeConfig) -> None:
    if not 0.0 <= config.val_fraction < 1.0:
        raise ValueError(f"tokenize.val_fraction must be in [0, 1), got {config.val_fraction}")
    if config.shard_tokens < 1 or config.partitions < 1:
        raise ValueError(
            "tokenize.shard_tokens and tokenize.partitions must be >= 1, got "
            f"{config.shard_tokens} and {config.partitions}"
        )


def _write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))
    os.replace(tmp, path)


def write_shards(
    spark: SparkSession,
    docs_uri: str,
    tokenizer_path: Path,
    config: TokenizeConfig,
    out_dir: Path,
) -> dict[str, Any]:
    """Tokenize every document of `docs_uri` into shards + `manifest.json` in `out_dir`."""
    _check_config(config)
    frame = read_documents_frame(spark, docs_uri).where(F.col("id").isNotNull())
    tokenizer_json = Path(tokenizer_path).read_text(encoding="utf-8")
    tokenizer = Tokenizer.from_str(tokenizer_json)
    vocab_size, eot_id = tokenizer.get_vocab_size(), tokenizer.token_to_id(EOT)
    if eot_id is None:
        raise ValueError(f"{tokenizer_path} has no {EOT} token: train it with tasks.tokenize.bpe")
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    threshold = round(config.val_fraction * SPLIT_BUCKETS)
    partitions = config.partitions

    def keyed(row: Any) -> tuple[tuple[int, str, str, str], None]:
        # the text is part of the sort key only so that duplicate ids still sort deterministically
        doc_id = row.id
        return (
            partition_of(doc_id, partitions),
            split_of(doc_id, threshold),
            doc_id,
            row.text,
        ), None

    broadcast = spark.sparkContext.broadcast(tokenizer_json)
    try:
        entries = (
            frame.select("id", "text")
            .rdd.map(keyed)
            .repartitionAndSortWithinPartitions(partitions, partitionFunc=lambda key: key[0])
            .mapPartitionsWithIndex(
                partial(
                    _write_partition,
                    out_dir=str(out_dir),
                    tokenizer_json=broadcast,
                    shard_tokens=config.shard_tokens,
                )
            )
            .collect()
        )
    finally:
        broadcast.unpersist()
    entries.sort(key=lambda entry: entry["file"])
    totals = {
        split: {
            "shards": sum(1 for e in entries if e["split"] == split),
            "docs": sum(e["docs"] for e in entries if e["split"] == split),
            "tokens": sum(e["tokens"] for e in entries if e["split"] == split),
        }
        for split in SPLITS
    }
    width = token_width(vocab_size)
    manifest = {
        "format": "lmforge-token-shards",
        "format_version": FORMAT_VERSION,
        "magic": MAGIC,
        "header_bytes": HEADER_BYTES,
        "dtype": TOKEN_DTYPES[width].name,
        "token_bytes": width,
        "vocab_size": vocab_size,
        "eot_id": eot_id,
        "tokenizer": Path(tokenizer_path).name,
        "tokenizer_sha256": file_sha256(tokenizer_path),
        "split_rule": {
            "rule": SPLIT_RULE.format(threshold=threshold) + ", else train",
            "val_fraction": config.val_fraction,
            "val_threshold": threshold,
            "buckets": SPLIT_BUCKETS,
        },
        "order": (
            f"partition int(sha256(id)[8:16], 16) * {partitions} >> 32, then (split, id) "
            "within a partition; each document followed by eot_id"
        ),
        "shards": entries,
        "totals": totals,
    }
    _write_json_atomic(out_dir / "manifest.json", manifest)
    return {
        "docs": sum(t["docs"] for t in totals.values()),
        "tokens": sum(t["tokens"] for t in totals.values()),
        "shards": len(entries),
        "splits": totals,
        "dtype": manifest["dtype"],
        "vocab_size": vocab_size,
    }
