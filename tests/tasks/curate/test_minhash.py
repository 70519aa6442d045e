"""The vectorised MinHash path computes exactly what datasketch computes, shingle by shingle."""

from __future__ import annotations

import re

import numpy as np
import pytest
from datasketch import MinHash

from tasks.curate.minhash import (
    _POLY,
    _fmix64,
    band_keys,
    batch_shingle_hashes,
    char_shingle_hashes,
    shingle_hashes,
    signatures,
)

TEXTS = [
    "The quick brown fox jumps over the lazy dog, again and again and again.",
    "İstanbul ŞEHİR naïve café — 日本語のテキスト under_score x2 ½",
    "two words",
    "Hello, world! " * 40,
]


def reference_shingle_hashes(text: str, n: int) -> list[int]:
    """Word hashes and n-gram mixing written out one word at a time."""
    words = re.findall(r"\w+", text.lower())
    word_hashes = []
    for word in words:
        h = sum(ord(c) * pow(int(_POLY), j + 1, 2**64) for j, c in enumerate(word)) % 2**64
        word_hashes.append(int(_fmix64(np.array([h], dtype=np.uint64))[0]))
    width = min(n, len(words))
    multipliers = [(0x9E3779B97F4A7C15 * (2 * k + 1)) % 2**64 for k in range(width)]
    out = []
    for i in range(len(words) - width + 1):
        mixed = sum(word_hashes[i + k] * multipliers[k] for k in range(width)) % 2**64
        out.append(int(_fmix64(np.array([mixed], dtype=np.uint64))[0]) >> 32)
    return out


@pytest.mark.parametrize("text", TEXTS)
def test_shingle_hashes_match_the_word_by_word_reference(text):
    assert shingle_hashes(text, 5).tolist() == reference_shingle_hashes(text, 5)


def test_batch_keeps_texts_apart_and_counts_shingles():
    hashes, counts = batch_shingle_hashes(TEXTS + ["", "!!"], 5)
    assert counts.tolist() == [len(reference_shingle_hashes(t, 5)) for t in TEXTS] + [0, 0]
    expected = [h for t in TEXTS for h in reference_shingle_hashes(t, 5)]
    assert hashes.tolist() == expected


def test_signatures_equal_datasketch_minhash_over_the_same_shingles():
    sigs = signatures(TEXTS, 5, 112, seed=7)
    for text, row in zip(TEXTS, sigs, strict=True):
        expected = MinHash(num_perm=112, seed=7, hashfunc=int)
        expected.update_batch(shingle_hashes(text, 5).tolist())
        assert np.array_equal(expected.hashvalues, row)


def test_band_keys_agree_exactly_where_bands_agree():
    sigs = signatures(TEXTS[:2], 5, 112, seed=1)
    copy = sigs[1].copy()
    copy[8:16] += 1  # change band 1 only
    keys = band_keys(np.stack([sigs[1], copy]), bands=14, rows=8)
    assert keys.dtype == np.int64
    assert (keys[0] == keys[1]).tolist() == [i != 1 for i in range(14)]


def test_a_text_without_words_has_no_signature():
    with pytest.raises(ValueError, match="without words"):
        signatures(["fine text", "..."], 5, 16, seed=1)


def test_char_shingles_hash_the_normalised_text_window_by_window():
    def reference(text: str, n: int) -> list[int]:
        joined = " ".join(re.findall(r"\w+", text.lower()))
        width, out = min(n, len(joined)), []
        for i in range(len(joined) - width + 1 if joined else 0):
            window = joined[i : i + width]
            h = sum(ord(c) * pow(int(_POLY), j + 1, 2**64) for j, c in enumerate(window)) % 2**64
            out.append(int(_fmix64(np.array([h], dtype=np.uint64))[0]) >> 32)
        return out

    texts = [*TEXTS, "", "ab!", "!!"]
    hashes, counts = char_shingle_hashes(texts, 5)
    assert counts.tolist() == [len(reference(t, 5)) for t in texts]
    assert hashes.tolist() == [h for t in texts for h in reference(t, 5)]
    assert char_shingle_hashes(["Hello,   WORLD"], 5)[0].tolist() == reference("hello world", 5)
