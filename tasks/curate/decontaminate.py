"""Benchmark decontamination: training documents that share word n-grams with an evaluation set.

As GPT-3 (Brown et al. 2020, appendix C) and datatrove's NGramsDecontFilter do, text is
normalised (lower case, accents dropped, punctuation removed: words are runs of letters and
digits) and cut into word n-grams, 13 by default. Every n-gram of every item of every
evaluation set (eval_sets.py) goes into a small index of (length, 64-bit hash, set) held by
the driver. An item shorter than n words cannot yield an n-gram; unlike datatrove (whose
nltk `ngrams` gives none, so such an item is never found) we use all its words as one shorter
n-gram, so a short PIQA pair or a short question is still found, but only from
`min_item_words` words up (GPT-3's smallest n, 8): shorter items ("dresser") would match
ordinary prose, and are skipped and counted.

The Spark job explodes each document's n-gram hashes (of length n and of each shorter length
the index holds) and joins them with the broadcast index: memory is bounded by a batch of
documents, the index is the only thing every executor holds. `action = "drop"` drops a document
with any match (`contaminated`); `"redact"` cuts the matched word spans out of its text
(with the punctuation attached to them), and drops it (`redacted_too_short`) when fewer than
`min_words_after_redact` words are left.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, LongType, StringType, StructField, StructType

from tasks.curate.eval_sets import MAX_NGRAM, DecontaminateConfig, EvalSetFile, read_items

WORD = re.compile(r"[^\W_]+")  # letters and digits; punctuation, symbols and "_" split words
MULTIPLIERS = np.array(  # odd 64-bit weights: the same words in another order hash otherwise
    [(0x9E3779B97F4A7C15 * (2 * k + 1)) & 0xFFFFFFFFFFFFFFFF for k in range(MAX_NGRAM)],
    dtype=np.uint64,
)
EXPLODE_ROWS = 500_000  # n-gram rows per Arrow batch the explode step yields at most
NGRAM_SCHEMA = StructType(
    [
        StructField("id", StringType(), False),
        StructField("start", IntegerType(), False),
        StructField("length", IntegerType(), False),
        StructField("hash", LongType(), False),
    ]
)
INDEX_SCHEMA = StructType(
    [
        StructField("length", IntegerType(), False),
        StructField("hash", LongType(), False),
        StructField("set", StringType(), False),
    ]
)
DROPS_SCHEMA = StructType(
    [StructField("id", StringType(), False), StructField("drop_reason", StringType(), True)]
)


def word_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, normalised word) of each word of `text`: lower case, accents dropped."""
    spans = []
    for match in WORD.finditer(text):
        word = unicodedata.normalize("NFKD", match.group().lower())
        word = "".join(c for c in word if not unicodedata.combining(c))
        spans.append((match.start(), match.end(), word))
    return spans


def _word_hashes(words: Sequence[str], cache: dict[str, int]) -> np.ndarray:
    """uint64 hash of each word (blake2b, stable across processes), memoised in `cache`."""
    out = np.empty(len(words), dtype=np.uint64)
    for i, word in enumerate(words):
        h = cache.get(word)
        if h is None:
            h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
            cache[word] = h
        out[i] = h
    return out


def _fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser (a bijection that spreads every input bit)."""
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


def ngram_hashes(word_hashes: np.ndarray, length: int) -> np.ndarray:
    """int64 hash of every run of `length` consecutive words (none when there are fewer)."""
    count = len(word_hashes) - length + 1
    if count <= 0:
        return np.empty(0, dtype=np.int64)
    mixed = np.zeros(count, dtype=np.uint64)
    for k in range(length):
        mixed += word_hashes[k : k + count] * MULTIPLIERS[k]
    return _fmix64(mixed).view(np.int64)


@dataclass
class EvalIndex:
    """The n-grams of the evaluation sets, and what each set held (for the stats)."""

    rows: list[tuple[int, int, str]]  # (length, hash, set name), distinct
    sets: list[dict[str, Any]]

    @property
    def lengths(self) -> list[int]:
        return sorted({length for length, _, _ in self.rows})


def build_index(eval_sets: Sequence[EvalSetFile], config: DecontaminateConfig) -> EvalIndex:
    """Read and hash every set's items (on the driver: evaluation sets are small)."""
    rows: list[tuple[int, int, str]] = []
    records, cache = [], {}
    for eval_set in eval_sets:
        items = read_items(eval_set)
        grams: set[tuple[int, int]] = set()
        whole = skipped = 0
        for item in items:
            hashes = _word_hashes([w for _, _, w in word_spans(item)], cache)
            if len(hashes) >= config.ngram:
                grams.update((config.ngram, int(h)) for h in ngram_hashes(hashes, config.ngram))
            elif len(hashes) >= config.min_item_words:
                grams.add((len(hashes), int(ngram_hashes(hashes, len(hashes))[0])))
                whole += 1
            else:
                skipped += 1
        rows += [(length, h, eval_set.name) for length, h in sorted(grams)]
        records.append(
            {
                "name": eval_set.name,
                "path": eval_set.path,
                "sha256": eval_set.sha256(),
                "kind": eval_set.kind,
                "used_by": list(eval_set.used_by),
                "items": len(items),
                "items_whole": whole,
                "items_skipped": skipped,
                "ngrams": len(grams),
            }
        )
    return EvalIndex(rows, records)


def explode_ngrams(docs: DataFrame, lengths: Sequence[int]) -> DataFrame:
    """(id, start, length, hash) of every word n-gram of each of `lengths` in every document."""
    wanted = sorted(set(lengths))

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        cache: dict[str, int] = {}
        parts: list[tuple[np.ndarray, ...]] = []
        size = 0
        for batch in batches:
            for doc_id, text in zip(
                batch.column("id").to_pylist(), batch.column("text").to_pylist(), strict=True
            ):
                words = _word_hashes([w for _, _, w in word_spans(text or "")], cache)
                for length in wanted:
                    hashes = ngram_hashes(words, length)
                    if len(hashes):
                        starts = np.arange(len(hashes), dtype=np.int32)
                        parts.append((doc_id, starts, np.int32(length), hashes))
                        size += len(hashes)
                if size >= EXPLODE_ROWS:
                    yield _ngram_batch(parts)
                    parts, size = [], 0
            if len(cache) > 1_000_000:  # a bound on the word memo, not on correctness
                cache.clear()
        if parts:
            yield _ngram_batch(parts)

    return docs.select("id", "text").mapInArrow(run, NGRAM_SCHEMA)


def _ngram_batch(parts: list[tuple[Any, ...]]) -> pa.RecordBatch:
    counts = [len(p[3]) for p in parts]
    ids = np.repeat(np.array([p[0] for p in parts], dtype=object), counts)
    lengths = np.repeat(np.array([p[2] for p in parts], dtype=np.int32), counts)
    columns = [ids, np.concatenate([p[1] for p in parts]), lengths]
    columns.append(np.concatenate([p[3] for p in parts]))
    return pa.RecordBatch.from_arrays([pa.array(c) for c in columns], schema=ARROW_NGRAMS)


ARROW_NGRAMS = pa.schema(
    [("id", pa.string()), ("start", pa.int32()), ("length", pa.int32()), ("hash", pa.int64())]
)


def merged_spans(spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Word intervals [first, last) covering the (start, length) n-grams, overlaps merged."""
    merged: list[tuple[int, int]] = []
    for start, length in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], start + length))
        else:
            merged.append((start, start + length))
    return merged


def _join(left: str, right: str) -> str:
    """`left` + `right` around a cut: one run of whitespace, the one with more line breaks."""
    if not left.strip():
        return right.lstrip()
    if not right.strip():
        return left.rstrip()
    gaps = (left[len(left.rstrip()) :], right[: len(right) - len(right.lstrip())])
    return left.rstrip() + max(gaps, key=lambda g: (g.count("\n"), len(g))) + right.lstrip()


def redact(text: str, spans: Sequence[tuple[int, int]]) -> tuple[str, int, int]:
    """`text` without the words of the (start, length) n-gram spans, nor the punctuation
    attached to them; (new text, intervals cut, words left)."""
    words = word_spans(text)
    cuts = merged_spans(spans)
    out, kept_from, left = [], 0, len(words)
    for first, last in cuts:
        begin, end = words[first][0], words[last - 1][1]
        floor = words[first - 1][1] if first > 0 else 0  # stop at the neighbouring words
        ceiling = words[last][0] if last < len(words) else len(text)
        while begin > floor and not text[begin - 1].isspace():
            begin -= 1
        while end < ceiling and not text[end].isspace():
            end += 1
        out.append(text[kept_from:begin])
        kept_from, left = end, left - (last - first)
    pieces = [*out, text[kept_from:]]
    result = pieces[0]
    for piece in pieces[1:]:
        result = _join(result, piece)
    return result, len(cuts), left


REDACTED_SCHEMA = StructType(
    [
        StructField("id", StringType(), False),
        StructField("redacted_text", StringType(), False),
        StructField("spans_cut", LongType(), False),
        StructField("words_left", LongType(), False),
    ]
)


def _redact_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    for batch in batches:
        done = [
            redact(text or "", [(s["start"], s["length"]) for s in spans])
            for text, spans in zip(batch["text"], batch["spans"], strict=True)
        ]
        texts, cut, left = zip(*done, strict=True) if done else ((), (), ())
        yield pd.DataFrame(
            {"id": batch["id"], "redacted_text": texts, "spans_cut": cut, "words_left": left}
        )


@dataclass
class Decontamination:
    """The stage's outcome: the documents (redacted where they were), the drops, the stats."""

    documents: DataFrame
    drops: DataFrame  # (id, drop_reason)
    stats: dict[str, Any]
    persisted: list[DataFrame] = field(default_factory=list)

    def unpersist(self) -> None:
        for frame in self.persisted:
            frame.unpersist()


def decontaminate(
    docs: DataFrame, index: EvalIndex, config: DecontaminateConfig
) -> Decontamination:
    """Find the documents sharing an n-gram with the index; drop or redact them."""
    spark = docs.sparkSession
    summary: dict[str, Any] = {
        "ngram": config.ngram,
        "min_item_words": config.min_item_words,
        "action": config.action,
        "sets": [dict(s, documents_contaminated=0) for s in index.sets],
        "documents_contaminated": 0,
        "ngrams_matched": 0,
        "spans_redacted": 0,
        "documents_redacted": 0,
    }
    no_drops = spark.createDataFrame([], DROPS_SCHEMA)
    if not index.rows:
        return Decontamination(docs, no_drops, summary)
    table = F.broadcast(spark.createDataFrame(index.rows, INDEX_SCHEMA))
    found = explode_ngrams(docs, index.lengths).join(table, ["length", "hash"])
    matches = found.select("id", "start", "length", "set").distinct()
    per_doc = (  # one row per contaminated document: its sets and matched n-gram positions
        matches.groupBy("id")
        .agg(
            F.collect_set("set").alias("sets"),
            F.collect_set(F.struct("start", "length")).alias("spans"),
        )
        .persist()
    )
    per_set = per_doc.select(F.explode("sets").alias("set")).groupBy("set").count().collect()
    counts = dict(per_set)
    for record in summary["sets"]:
        record["documents_contaminated"] = int(counts.get(record["name"], 0))
    totals = per_doc.agg(F.count("id"), F.sum(F.size("spans"))).first()
    summary["documents_contaminated"] = int(totals[0])
    summary["ngrams_matched"] = int(totals[1] or 0)
    if config.action == "drop":
        drops = per_doc.select("id", F.lit("contaminated").alias("drop_reason"))
        return Decontamination(docs, drops, summary, [per_doc])
    redacted = (
        docs.select("id", "text")
        .join(per_doc.select("id", "spans"), "id")
        .mapInPandas(_redact_batches, REDACTED_SCHEMA)
        .withColumn("too_short", F.col("words_left") < config.min_words_after_redact)
        .persist()
    )
    totals = redacted.agg(F.sum("spans_cut"), F.sum((~F.col("too_short")).cast("long"))).first()
    summary["spans_redacted"] = int(totals[0] or 0)
    summary["documents_redacted"] = int(totals[1] or 0)
    drops = redacted.filter("too_short").select(
        "id", F.lit("redacted_too_short").alias("drop_reason")
    )
    rewritten = redacted.filter(~F.col("too_short")).select("id", "redacted_text")
    documents = (
        docs.join(rewritten, "id", "left")
        .withColumn("text", F.coalesce("redacted_text", "text"))
        .select(*docs.columns)
    )
    return Decontamination(documents, drops, summary, [per_doc, redacted])
