"""MinHash signatures (datasketch's scheme) and LSH band keys, computed on Spark executors.

Text is normalised to lower-case `\\w+` words (punctuation and spacing do not matter) and cut
into word n-gram shingles, or (`unit="char"`, for short texts such as social messages, where
a few changed words leave no word 5-gram in common) into character n-grams of the words joined
by single spaces. Each word shingle is hashed to 32 bits without building its string: the
words are hashed once (a polynomial hash of their code points) and every n-gram's hash is a
mix of its words' hashes; a character shingle is the polynomial hash of its code points; all
computed for a whole batch of texts with numpy. Signatures are datasketch's default `affine32`
MinHash over those shingle hashes: the same permutations (taken from `datasketch.MinHash`)
and the same values as `MinHash(num_perm, seed, hashfunc=int).update_batch(shingle_hashes(text,
n))`, but computed for a batch of documents in one numpy pass instead of one object per
document (tests check the equality). A signature of `bands * rows` values is split into
`bands` bands; each band's values are mixed into one 64-bit key. Two documents that share a
key in the same band are candidates. Signatures stay in Spark; the driver never collects them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Literal

import numpy as np
import pyarrow as pa
from datasketch import MinHash
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, LongType, StringType, StructField, StructType

_WORD = re.compile(r"\w+")
# Odd 64-bit multipliers: word k of an n-gram is multiplied by the k-th one (wrapping), so the
# same words in another order give another shingle hash.
_POSITION_MULTIPLIERS = np.array(
    [(0x9E3779B97F4A7C15 * (2 * k + 1)) & 0xFFFFFFFFFFFFFFFF for k in range(64)], dtype=np.uint64
)
_POLY = np.uint64(0x100000001B3)  # odd, so invertible modulo 2**64
_POLY_INVERSE = np.uint64(pow(int(_POLY), -1, 2**64))
_WORD_CHARS: np.ndarray | None = None
ShingleUnit = Literal["word", "char"]
SHINGLE_BATCH = 512  # texts hashed in one numpy pass (bounds the per-character arrays)
PERMUTE_BATCH = 32  # texts permuted in one pass (keeps the shingles x permutations block small)
SIGNATURE_SCHEMA = StructType(
    [
        StructField("id", StringType(), False),
        StructField("signature", ArrayType(LongType(), False), False),
        StructField("band_keys", ArrayType(LongType(), False), False),
    ]
)


def _fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser (a bijection that spreads every input bit)."""
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finaliser, as datasketch applies it before its permutations."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def _word_char_table() -> np.ndarray:
    """(0x110000,) bool: which code points `\\w` matches (built once per process)."""
    global _WORD_CHARS
    if _WORD_CHARS is None:
        every = "".join(map(chr, range(0x110000))).encode("utf-32-le", "surrogatepass")
        table = np.zeros(0x110000, dtype=bool)
        for run in _WORD.finditer(every.decode("utf-32-le", "surrogatepass")):
            table[run.start() : run.end()] = True
        _WORD_CHARS = table
    return _WORD_CHARS


def _code_points(strings: list[str]) -> np.ndarray:
    """The code points of `strings` joined by NUL (never a word character), as uint32."""
    return np.frombuffer("\x00".join(strings).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _span_hashes(points: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """uint64 polynomial hashes sum(c_j * P**j) of the spans [start, end) of `points`, each
    taken from one prefix sum: no Python object per span."""
    powers = np.cumprod(np.full(len(points), _POLY, dtype=np.uint64))  # P**(j+1), wrapping
    prefix = np.concatenate(([np.uint64(0)], np.cumsum(points * powers, dtype=np.uint64)))
    inverse = np.cumprod(np.full(len(points) + 1, _POLY_INVERSE, dtype=np.uint64))
    inverse = np.concatenate(([np.uint64(1)], inverse))  # P**-j
    return (prefix[ends] - prefix[starts]) * inverse[starts]


def _word_hashes(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """uint64 hashes of the lower-cased `\\w+` words of all texts, concatenated, and the number
    of words of each text. Computed on code points with numpy, no Python object per word."""
    lowered = [t.lower() for t in texts]  # lower() can change a text's length ("İ")
    points = _code_points(lowered)
    is_word = _word_char_table()[points]
    edges = np.diff(is_word.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    hashes = _fmix64(_span_hashes(points, starts, ends))
    text_starts = np.cumsum([0] + [len(t) + 1 for t in lowered[:-1]])
    owner = np.searchsorted(text_starts, starts, side="right") - 1  # the text of each word
    counts = np.bincount(owner, minlength=len(texts))
    return hashes, counts


def char_shingle_hashes(texts: list[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """uint32 hashes of every text's character n-grams, over its lower-cased `\\w+` words
    joined by single spaces, concatenated, and each text's shingle count. A shorter text is
    one shingle of all of it; a text without words has none."""
    normalised = [" ".join(_WORD.findall(t.lower())) for t in texts]
    lengths = np.array([len(t) for t in normalised], dtype=np.int64)
    counts = np.where(lengths > 0, np.maximum(lengths - n + 1, 1), 0)
    text_starts = np.cumsum(lengths + 1) - (lengths + 1)  # each text's first code point
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    starts = np.repeat(text_starts, counts) + offsets
    ends = starts + np.repeat(np.minimum(lengths, n), counts)
    hashes = _fmix64(_span_hashes(_code_points(normalised), starts, ends))
    return (hashes >> np.uint64(32)).astype(np.uint32), counts


def batch_shingle_hashes(texts: list[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """uint32 hashes of every text's word n-grams (with repeats), concatenated, and each text's
    shingle count. A text of fewer than n words is one shingle of all of them; no words, none."""
    word_hashes, lengths = _word_hashes(texts)
    counts = np.where(lengths > 0, np.maximum(lengths - n + 1, 1), 0)  # shingles per text
    ends = np.cumsum(lengths)
    first_word = np.repeat(ends - lengths, counts)
    starts = first_word + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
    stop = np.repeat(ends, counts)  # (shingles,): where each shingle's text ends
    mixed = np.zeros(len(starts), dtype=np.uint64)
    for k in range(n):  # the k-th word of every n-gram, weighted by its position
        inside = starts + k < stop
        picked = word_hashes[np.minimum(starts + k, max(len(word_hashes) - 1, 0))]
        mixed += np.where(inside, picked * _POSITION_MULTIPLIERS[k], np.uint64(0))
    return (_fmix64(mixed) >> np.uint64(32)).astype(np.uint32), counts


def shingle_hashes(text: str, n: int) -> np.ndarray:
    """uint32 hashes of one text's word n-grams (see `batch_shingle_hashes`)."""
    return batch_shingle_hashes([text], n)[0]


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 permutation parameters (a, b), each (num_perm,) uint32."""
    a, b = MinHash(num_perm=num_perm, seed=seed).permutations
    return a.astype(np.uint32), b.astype(np.uint32)


def signatures(
    texts: list[str], ngram: int, num_perm: int, seed: int, unit: ShingleUnit = "word"
) -> np.ndarray:
    """(len(texts), num_perm) uint32 MinHash values over word (or `unit="char"`: character)
    n-gram shingles; every text must have at least one word."""
    a, b = permutations(num_perm, seed)
    shingles = batch_shingle_hashes if unit == "word" else char_shingle_hashes
    out = np.empty((len(texts), num_perm), dtype=np.uint32)
    for first in range(0, len(texts), SHINGLE_BATCH):
        chunk = texts[first : first + SHINGLE_BATCH]
        hashes, counts = shingles(chunk, ngram)
        if counts.min() == 0:
            raise ValueError("a text without words has no MinHash signature; filter it first")
        out[first : first + len(chunk)] = _min_permuted(_fmix32(hashes), counts, a, b)
    return out


def _min_permuted(hashes: np.ndarray, counts: np.ndarray, a: np.ndarray, b: np.ndarray):
    """Per text, the minimum over its shingles of (a * h + b) mod 2**32, a few texts at a time
    so the (shingles, num_perm) block stays in cache."""
    ends = np.cumsum(counts)
    out = np.empty((len(counts), len(a)), dtype=np.uint32)
    block = np.empty((0, len(a)), dtype=np.uint32)
    for first in range(0, len(counts), PERMUTE_BATCH):
        last = min(first + PERMUTE_BATCH, len(counts))
        lo, hi = int(ends[first] - counts[first]), int(ends[last - 1])
        if len(block) < hi - lo:
            block = np.empty((hi - lo, len(a)), dtype=np.uint32)
        permuted = block[: hi - lo]  # wraps modulo 2**32, as datasketch's affine32 does
        np.multiply(hashes[lo:hi, None], a, out=permuted)
        np.add(permuted, b, out=permuted)
        out[first:last] = np.minimum.reduceat(permuted, (ends - counts)[first:last] - lo, axis=0)
    return out


def band_keys(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(documents, bands) signed 64-bit keys: each band's `rows` values mixed into one hash."""
    grouped = sigs[:, : bands * rows].reshape(len(sigs), bands, rows).astype(np.uint64)
    keys = np.broadcast_to(np.arange(1, bands + 1, dtype=np.uint64), (len(sigs), bands)).copy()
    for r in range(rows):  # fold each row's value into the band's running hash
        keys = _fmix64((keys << np.uint64(32)) ^ grouped[:, :, r] ^ (keys >> np.uint64(32)))
    return keys.view(np.int64)


def _list_column(matrix: np.ndarray) -> pa.ListArray:
    """A (rows, width) int64 matrix as an Arrow list column, without a Python object per row."""
    rows, width = matrix.shape
    offsets = pa.array(np.arange(0, rows * width + 1, width, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(matrix.reshape(-1)))


def minhash_table(
    docs: DataFrame, ngram: int, bands: int, rows: int, seed: int = 1, unit: ShingleUnit = "word"
) -> DataFrame:
    """(id, signature, band_keys) for every document with at least one word, over `unit`
    n-gram shingles."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            texts = [t or "" for t in batch.column("text").to_pylist()]
            has_words = [bool(_WORD.search(t)) for t in texts]
            sigs = signatures(
                [t for t, ok in zip(texts, has_words, strict=True) if ok],
                ngram,
                bands * rows,
                seed,
                unit,
            )
            yield pa.RecordBatch.from_arrays(
                [
                    batch.column("id").filter(pa.array(has_words)),
                    _list_column(sigs.astype(np.int64)),
                    _list_column(band_keys(sigs, bands, rows)),
                ],
                names=["id", "signature", "band_keys"],
            )

    return docs.select("id", "text").mapInArrow(run, SIGNATURE_SCHEMA)


def estimated_jaccard(left: str, right: str, num_perm: int) -> F.Column:
    """Share of equal MinHash values between two signature columns (estimates Jaccard)."""
    equal = F.zip_with(F.col(left), F.col(right), lambda x, y: (x == y).cast("int"))
    return F.aggregate(equal, F.lit(0), lambda acc, x: acc + x) / F.lit(num_perm)


def similar_pairs(pairs: DataFrame, nodes: DataFrame, num_perm: int, threshold: float) -> DataFrame:
    """The (src, dst) of `pairs` whose signatures (`nodes`: node, signature) agree on at least
    `threshold` of their `num_perm` values."""
    sigs = nodes.select("node", "signature")
    left = sigs.withColumnRenamed("node", "src").withColumnRenamed("signature", "a")
    right = sigs.withColumnRenamed("node", "dst").withColumnRenamed("signature", "b")
    joined = pairs.join(left, "src").join(right, "dst")
    return joined.filter(estimated_jaccard("a", "b", num_perm) >= threshold).select("src", "dst")
