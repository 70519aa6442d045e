"""The binary token shard format (llm.c style, versioned), shared by the writer and the loader.

A shard `<split>-p<partition>-<seq>.bin` is a 1024-byte header of 256 little-endian int32, then
the tokens (little-endian uint16 when every id fits, else uint32):

    int32[0]    MAGIC (0x6C6D6667, "lmfg")
    int32[1]    FORMAT_VERSION (1)
    int32[2]    bytes per token: 2 (uint16) or 4 (uint32)
    int32[3]    vocabulary size of the tokenizer
    int32[4:6]  number of tokens, one little-endian int64
    int32[6:8]  number of documents, one little-endian int64
    int32[8]    end-of-text token id
    int32[9:]   reserved, zero

Every document's tokens are followed by the end-of-text id, and documents never straddle shards
(one longer than the shard size gets a shard of its own; the manifest's `order` says how the
documents are laid out: id order, or a seeded global shuffle).
Beside each shard, `<same name>.idx` holds one little-endian uint64 per document: the offset
(in tokens, from the first token) where that document starts. Document i spans
`[idx[i], idx[i+1])` (the last one ends at the token count), its end-of-text id included.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np

MAGIC = 0x6C6D6667
FORMAT_VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
TOKEN_DTYPES = {2: np.dtype("<u2"), 4: np.dtype("<u4")}
INDEX_DTYPE = np.dtype("<u8")
REBUILD_HINT = (
    "re-run the tokenize step (lmforge run with the same config; delete this tokenize output "
    "folder first so it is rebuilt instead of skipped)"
)


class ShardFormatError(ValueError):
    """A shard or its manifest entry is unusable; the message names the file and the fix."""


def token_width(vocab_size: int) -> int:
    """Bytes per token: 2 when every id fits in uint16, else 4."""
    return 2 if vocab_size <= 1 << 16 else 4


def index_path(shard_path: Path | str) -> Path:
    """The document-boundary index beside a shard."""
    return Path(shard_path).with_suffix(".idx")


@dataclass(frozen=True)
class ShardHeader:
    """The fields of a shard header (magic and version are implied)."""

    token_bytes: int
    vocab_size: int
    num_tokens: int
    num_docs: int
    eot_id: int

    @property
    def dtype(self) -> np.dtype:
        return TOKEN_DTYPES[self.token_bytes]

    def to_bytes(self) -> bytes:
        """The 1024-byte header."""
        header = np.zeros(HEADER_INTS, dtype="<i4")
        header[:4] = [MAGIC, FORMAT_VERSION, self.token_bytes, self.vocab_size]
        header[4:8] = np.array([self.num_tokens, self.num_docs], dtype="<i8").view("<i4")
        header[8] = self.eot_id
        return header.tobytes()

    @classmethod
    def from_bytes(cls, raw: bytes, path: Path | str) -> ShardHeader:
        """Parse and sanity-check a header read from `path` (named in any error)."""
        if len(raw) < HEADER_BYTES:
            raise ShardFormatError(
                f"{path}: {len(raw)} bytes, shorter than the {HEADER_BYTES}-byte shard header; "
                f"the file is truncated: {REBUILD_HINT}"
            )
        header = np.frombuffer(raw[:HEADER_BYTES], dtype="<i4")
        if header[0] != MAGIC:
            raise ShardFormatError(
                f"{path}: bad magic number {int(header[0]):#x} (expected {MAGIC:#x}); this is "
                f"not an lmforge token shard or it is damaged: {REBUILD_HINT}"
            )
        if header[1] != FORMAT_VERSION:
            raise ShardFormatError(
                f"{path}: shard format version {int(header[1])}, this code reads version "
                f"{FORMAT_VERSION}: {REBUILD_HINT}"
            )
        if int(header[2]) not in TOKEN_DTYPES:
            raise ShardFormatError(
                f"{path}: unknown token width {int(header[2])} bytes (expected 2 or 4): "
                f"{REBUILD_HINT}"
            )
        num_tokens, num_docs = (int(v) for v in header[4:8].view("<i8"))
        return cls(int(header[2]), int(header[3]), num_tokens, num_docs, int(header[8]))


def read_header(shard_path: Path | str) -> ShardHeader:
    """The header of the shard at `shard_path`."""
    with open(shard_path, "rb") as handle:
        return ShardHeader.from_bytes(handle.read(HEADER_BYTES), shard_path)


def map_tokens(shard_path: Path | str, header: ShardHeader) -> np.memmap:
    """The shard's tokens, memory-mapped read-only (nothing is read until sliced)."""
    return np.memmap(
        shard_path, dtype=header.dtype, mode="r", offset=HEADER_BYTES, shape=(header.num_tokens,)
    )


def read_document_offsets(shard_path: Path | str, header: ShardHeader) -> np.ndarray:
    """Start offset of each document of a shard, read from its `.idx`, checked against `header`."""
    path = index_path(shard_path)
    offsets = np.fromfile(path, dtype=INDEX_DTYPE)
    # documents are non-empty (each ends with eot), so offsets start at 0 and strictly increase
    valid = len(offsets) == header.num_docs and (
        len(offsets) == 0
        or (
            offsets[0] == 0
            and offsets[-1] < header.num_tokens
            and bool(np.all(np.diff(offsets) > 0))
        )
    )
    if not valid:
        raise ShardFormatError(
            f"{path}: {len(offsets)} document offsets do not fit the shard header "
            f"({header.num_docs} documents, {header.num_tokens} tokens): {REBUILD_HINT}"
        )
    return offsets


def read_documents(shard_path: Path | str) -> list[list[int]]:
    """Every document of one shard as a list of token ids, its end-of-text id removed."""
    header = read_header(shard_path)
    tokens = map_tokens(shard_path, header)
    bounds = [*read_document_offsets(shard_path, header).tolist(), header.num_tokens]
    return [tokens[start : end - 1].tolist() for start, end in pairwise(bounds)]
