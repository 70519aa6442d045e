"""MinHash signatures (datasketch) and LSH band keys, computed on Spark executors.

Text is normalised to lower-case `\\w+` words (punctuation and spacing do not matter) and cut
into word n-gram shingles. A signature of `bands * rows` permutations is split into `bands`
bands; each band's `rows` hash values are hashed to one 64-bit key. Two documents that share a
key in the same band are candidates. Signatures stay in Spark; the driver never collects them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

import numpy as np
import pandas as pd
from datasketch import MinHash
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, LongType, StringType, StructField, StructType

_WORD = re.compile(r"\w+")
SIGNATURE_SCHEMA = StructType(
    [
        StructField("id", StringType(), False),
        StructField("signature", ArrayType(LongType(), False), False),
        StructField("band_keys", ArrayType(LongType(), False), False),
    ]
)


def shingles(text: str, n: int) -> set[bytes]:
    """Word n-grams of the normalised text; a text shorter than n words is one shingle."""
    tokens = _WORD.findall(text.lower())
    if len(tokens) < n:
        return {" ".join(tokens).encode()} if tokens else set()
    return {" ".join(tokens[i : i + n]).encode() for i in range(len(tokens) - n + 1)}


def signatures(texts: list[str], ngram: int, num_perm: int, seed: int) -> np.ndarray:
    """(len(texts), num_perm) uint64 MinHash values, via datasketch's bulk path."""
    hashes = MinHash.bulk([shingles(t, ngram) for t in texts], num_perm=num_perm, seed=seed)
    return np.stack([h.hashvalues for h in hashes]) if hashes else np.empty((0, num_perm))


def band_keys(signature: np.ndarray, bands: int, rows: int) -> list[int]:
    """One signed 64-bit key per band: a hash of that band's `rows` MinHash values."""
    keys = []
    for b in range(bands):
        chunk = np.ascontiguousarray(signature[b * rows : (b + 1) * rows], dtype=np.uint64)
        digest = hashlib.blake2b(chunk.tobytes(), digest_size=8, person=b.to_bytes(4, "little"))
        keys.append(int.from_bytes(digest.digest(), "little", signed=True))
    return keys


def minhash_table(docs: DataFrame, ngram: int, bands: int, rows: int, seed: int = 1) -> DataFrame:
    """(id, signature, band_keys) for every document with at least one word."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            texts = [t or "" for t in batch["text"]]
            has_words = [bool(_WORD.search(t)) for t in texts]
            ids = [i for i, ok in zip(batch["id"], has_words, strict=True) if ok]
            sigs = signatures(
                [t for t, ok in zip(texts, has_words, strict=True) if ok], ngram, bands * rows, seed
            )
            yield pd.DataFrame(
                {
                    "id": ids,
                    "signature": [s.astype(np.uint64).view(np.int64).tolist() for s in sigs],
                    "band_keys": [band_keys(s, bands, rows) for s in sigs],
                }
            )

    return docs.select("id", "text").mapInPandas(run, SIGNATURE_SCHEMA)


def estimated_jaccard(left: str, right: str, num_perm: int) -> F.Column:
    """Share of equal MinHash values between two signature columns (estimates Jaccard)."""
    equal = F.zip_with(F.col(left), F.col(right), lambda x, y: (x == y).cast("int"))
    return F.aggregate(equal, F.lit(0), lambda acc, x: acc + x) / F.lit(num_perm)
