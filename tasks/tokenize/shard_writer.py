"""Executor side of the shard writer: sorted Arrow batches in, shard files and entries out.

See tasks/tokenize/shards.py for the job and the order, model/token_format.py for the format.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark import Broadcast, TaskContext
from tokenizers import Tokenizer

from model.files import sha256_file
from model.token_format import (
    HEADER_BYTES,
    INDEX_DTYPE,
    TOKEN_DTYPES,
    ShardHeader,
    index_path,
    token_width,
)
from model.tokenizer import tokenizer_from_json

ENCODE_BATCH_DOCS = 512
ENCODE_BYTES = 4 << 20  # text encoded in one call, unless one document is larger (`_encoded`)
COUNTERS = ("skipped_empty", "skipped_no_id", "invalid_utf8_docs", "oversized_docs")


class OpenShard:
    """A shard under a temporary name: header placeholder, then tokens; offsets kept in memory."""

    def __init__(
        self, out_dir: Path, name: str, part: int, split: str, dtype: np.dtype, attempt: int
    ):
        self.path, self.part, self.split, self.dtype = out_dir / name, part, split, dtype
        self.tmp = out_dir / f".{name}.attempt{attempt}"
        self.handle = open(self.tmp, "wb")
        self.handle.write(bytes(HEADER_BYTES))
        self.offsets: list[int] = []
        self.tokens = 0

    def add(self, ids: np.ndarray) -> None:
        """Append one document's tokens (its end-of-text id included)."""
        self.offsets.append(self.tokens)
        self.handle.write(ids.astype(self.dtype, copy=False).tobytes())
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
            "sha256": sha256_file(self.path),
            "index_sha256": sha256_file(index_path(self.path)),
        }


@lru_cache(maxsize=1)
def worker_tokenizer(tokenizer_json: str) -> Tokenizer:
    """The tokenizer, built once per Python worker process (Spark reuses a worker for the
    tasks and jobs that follow): a fresh tokenizer per task made each later task slower and
    the worker's memory grow (bench/README.md)."""
    return tokenizer_from_json(tokenizer_json)  # document text cannot forge an end-of-text id


def _decode(raw: bytes, counts: dict[str, int]) -> str:
    """UTF-8 text; invalid sequences become U+FFFD and are counted in `invalid_utf8_docs`."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        counts["invalid_utf8_docs"] += 1
        return raw.decode("utf-8", errors="replace")


def _encoded(
    tokenizer: Tokenizer, keep: list[int], raw: list[bytes], counts: dict[str, int]
) -> Iterator[tuple[int, Any]]:
    """(row, encoding) of the kept rows, encoded a few MB of text at a time: an encoding holds
    tens of bytes per token, so encoding a whole Arrow batch (up to 64 MB of text) at once would
    hold its encodings all together; a document larger than the bound is encoded alone."""
    start = 0
    while start < len(keep):
        end, size = start, 0
        while end < len(keep) and (end == start or size + len(raw[keep[end]]) <= ENCODE_BYTES):
            size += len(raw[keep[end]])
            end += 1
        rows = keep[start:end]
        texts = [_decode(raw[i], counts) for i in rows]
        yield from zip(rows, tokenizer.encode_batch_fast(texts), strict=True)
        start = end


def write_partition(
    batches: Iterator[pa.RecordBatch],
    *,
    out_dir: str,
    tokenizer_json: Broadcast[str],
    eot_id: int,
    shard_tokens: int,
) -> Iterator[pa.RecordBatch]:
    """Executor side: encode sorted documents into shards; yield manifest entries as JSON."""
    context = TaskContext.get()
    # one tokenizer thread per core the task holds: tasks running side by side share the cores
    os.environ.setdefault("RAYON_NUM_THREADS", str(context.cpus() if context else 1))
    tokenizer = worker_tokenizer(tokenizer_json.value)
    vocab_size = tokenizer.get_vocab_size()
    dtype = TOKEN_DTYPES[token_width(vocab_size)]
    attempt = context.attemptNumber() if context else 0
    counts = dict.fromkeys(COUNTERS, 0)
    shard: OpenShard | None = None
    seq: dict[tuple[int, str], int] = {}
    entries: list[dict[str, Any]] = []
    for batch in batches:
        columns = batch.to_pydict()
        keep = [
            i
            for i, (doc_id, text) in enumerate(zip(columns["id"], columns["text"], strict=True))
            if doc_id is not None and text
        ]
        no_id = sum(1 for doc_id in columns["id"] if doc_id is None)
        counts["skipped_no_id"] += no_id
        counts["skipped_empty"] += batch.num_rows - len(keep) - no_id
        for i, encoding in _encoded(tokenizer, keep, columns["text"], counts):
            ids = np.array(encoding.ids + [eot_id], dtype=dtype)
            part, split = columns["_part"][i], columns["_split"][i]
            counts["oversized_docs"] += len(ids) > shard_tokens
            # a new shard per (partition, split), and before a document that would overfill one
            if shard is not None and (
                (shard.part, shard.split) != (part, split) or shard.tokens + len(ids) > shard_tokens
            ):
                entries.append(shard.finish(vocab_size, eot_id))
                shard = None
            if shard is None:
                number = seq[part, split] = seq.get((part, split), -1) + 1
                name = f"{split}-p{part:05d}-{number:05d}.bin"
                shard = OpenShard(Path(out_dir), name, part, split, dtype, attempt)
            shard.add(ids)
        if entries:
            yield pa.record_batch({"entry": [json.dumps(e) for e in entries]})
            entries = []
    if shard is not None:
        entries.append(shard.finish(vocab_size, eot_id))
    entries.append({"counts": counts})
    yield pa.record_batch({"entry": [json.dumps(e) for e in entries]})


def count_partition(
    batches: Iterator[pa.RecordBatch], *, tokenizer_json: Broadcast[str]
) -> Iterator[pa.RecordBatch]:
    """Executor side of `tokenize.mix`: (id, n_tokens) of each document with text, its
    end-of-text id included, encoded as `write_partition` encodes it."""
    tokenizer = worker_tokenizer(tokenizer_json.value)
    counts = dict.fromkeys(COUNTERS, 0)
    for batch in batches:
        columns = batch.to_pydict()
        keep = [i for i, text in enumerate(columns["text"]) if text]
        found = list(_encoded(tokenizer, keep, columns["text"], counts))
        yield pa.record_batch(
            {
                "id": [columns["id"][i] for i, _ in found],
                "n_tokens": pa.array([len(e.ids) + 1 for _, e in found], pa.int64()),
            }
        )
