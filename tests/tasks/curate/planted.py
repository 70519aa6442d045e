"""A planted near-duplicate set from real text: book passages plus copies edited to known Jaccard.

Used by the quality test and bench/dedup.py. Each copy replaces a random share of its source's
words; its true Jaccard similarity over the same word 5-gram shingles MinHash uses (as their
32-bit hashes; collisions are negligible) is computed exactly, so results can be scored per
similarity band.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from tasks.curate.minhash import shingle_hashes

BOOKS = ("pg1342.txt", "pg1661.txt", "11-0.txt")
START = re.compile(r"\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG[^\n]*\n")
END = re.compile(r"\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG")


def book_passages(books_dir: Path, min_words: int = 120, max_words: int = 300) -> list[str]:
    """Paragraphs of the Gutenberg books' bodies, packed into passages of 120-300 words."""
    passages: list[str] = []
    for name in BOOKS:
        text = (books_dir / name).read_text(encoding="utf-8-sig").replace("\r\n", "\n")
        start, end = START.search(text), END.search(text)
        body = text[start.end() if start else 0 : end.start() if end else len(text)]
        current: list[str] = []
        for para in re.split(r"\n\s*\n", body):
            current.extend(para.split())
            if len(current) >= min_words:
                passages.append(" ".join(current[:max_words]))
                current = []
    return passages


def jaccard(a: str, b: str, ngram: int = 5) -> float:
    """Exact Jaccard similarity of two texts' word n-gram shingle sets."""
    sa, sb = set(shingle_hashes(a, ngram).tolist()), set(shingle_hashes(b, ngram).tolist())
    return len(sa & sb) / max(len(sa | sb), 1)


def edited_copy(text: str, fraction: float, rng: random.Random) -> str:
    """`text` with `fraction` of its words replaced by random made-up words."""
    words = text.split()
    for i in rng.sample(range(len(words)), int(round(fraction * len(words)))):
        words[i] = "".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(6))
    return " ".join(words)


def planted_set(
    passages: list[str], fractions: list[float], seed: int = 0
) -> tuple[list[tuple[str, str]], list[tuple[str, str, float]]]:
    """(docs as (id, text), pairs as (original id, copy id, true Jaccard)).

    Originals are `a<n>` and copies `b<n>`, so the original sorts first and survives.
    """
    rng = random.Random(seed)
    docs = [(f"a{i:06d}", text) for i, text in enumerate(passages)]
    pairs = []
    for i, text in enumerate(passages):
        copy = edited_copy(text, fractions[i % len(fractions)], rng)
        docs.append((f"b{i:06d}", copy))
        pairs.append((f"a{i:06d}", f"b{i:06d}", jaccard(text, copy)))
    return docs, pairs
