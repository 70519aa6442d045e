"""Paragraph-level dedup across documents (as C4 and Dolma do), in Spark.

A unit (a line, or a paragraph between blank lines) whose normalised text occurs in at least
`min_documents` different documents is boilerplate (site menus, footers, licence blocks) and
is removed from *every* document that holds it, C4-style: a menu should leave every page, not
all but the first (Dolma's choice keeps one copy, on whichever page happened to come first).
Documents are counted by their normalised text (exact dedup's hash), so exact copies of a page
count once: they are exact dedup's business, and would otherwise lose their whole text here. A
unit repeated inside one document counts once for it, and all its copies go when it goes.

Memory bounded: one (document, position, 64-bit hash) row per unit, a group-by hash counting
distinct documents, a semi-join back and a group-by document of the removed positions; no text
and no unit reaches the driver, only counts. Each changed document is rebuilt from its kept
units in order with the original separators; where removed units lay between two kept ones,
the widest of the separators between them is kept (a paragraph break wins over a line break).
A changed document left with fewer than `min_words_after` words is dropped
(`too_short_after_paragraph_dedup`); a dropped one keeps its text as it came in.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType

from tasks.curate.exact_dedup import normalised_text_hash
from tasks.curate.paragraphs import TOO_SHORT, ParagraphDedupConfig, rebuild, split_units, unit_key

STAGE = "paragraph_dedup"
UNIT_SCHEMA = "id string, doc string, pos int, key long"


def unit_rows(docs: DataFrame, config: ParagraphDedupConfig) -> DataFrame:
    """(id, doc, pos, key): one row per unit that takes part, from `docs` with a `doc` column
    (the text's normalised hash)."""

    def emit(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            rows: list[tuple[str, str, int, int]] = []
            for doc_id, doc, text in zip(batch["id"], batch["doc"], batch["text"], strict=True):
                units, _ = split_units(text or "", config.unit)
                for pos, unit in enumerate(units):
                    key = unit_key(unit, config)
                    if key is not None:
                        rows.append((doc_id, doc, pos, key))
            yield pd.DataFrame(rows, columns=["id", "doc", "pos", "key"])

    return docs.select("id", "doc", "text").mapInPandas(emit, UNIT_SCHEMA)


def rewritten_documents(
    docs: DataFrame, removed: DataFrame, config: ParagraphDedupConfig
) -> DataFrame:
    """`docs` with the removed units taken out of their text, plus `drop_reason`,
    `_units_removed` and `_bytes_removed`; `removed` holds (id, doc, positions)."""
    columns = [c for c in docs.columns if c != "doc"]
    schema = StructType(
        [f for f in docs.schema.fields if f.name != "doc"]
        + [
            StructField("drop_reason", StringType(), True),
            StructField("_units_removed", LongType(), False),
            StructField("_bytes_removed", LongType(), False),
        ]
    )

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            texts, reasons, n_units, n_bytes = [], [], [], []
            for text, positions in zip(batch["text"], batch["positions"], strict=True):
                text = text or ""
                gone = set() if positions is None else {int(p) for p in positions}
                new = rebuild(*split_units(text, config.unit), gone) if gone else text
                short = bool(gone) and len(new.split()) < config.min_words_after
                texts.append(text if short else new)
                reasons.append(TOO_SHORT if short else None)
                n_units.append(len(gone))
                n_bytes.append(len(text.encode("utf-8")) - len(new.encode("utf-8")))
            yield batch[columns].assign(
                text=texts, drop_reason=reasons, _units_removed=n_units, _bytes_removed=n_bytes
            )

    joined = docs.join(removed, ["id", "doc"], "left").select(*columns, "positions")
    return joined.mapInPandas(run, schema)


def paragraph_dedup(
    docs: DataFrame, config: ParagraphDedupConfig
) -> tuple[DataFrame, DataFrame, dict[str, Any]]:
    """(`docs` with boilerplate units taken out of their text; (id, drop_reason) of the
    documents left too short; the stage's stats). The rewritten documents are computed once
    (a local checkpoint, freed with the frames)."""
    # removals join back on (id, doc), so rows that share an id with different texts stay apart
    keyed = docs.withColumn("doc", normalised_text_hash(F.col("text")))
    units = unit_rows(keyed, config).persist()
    try:
        counts = units.groupBy("key").agg(F.countDistinct("doc").alias("documents"))
        boilerplate = counts.filter(F.col("documents") >= config.min_documents).select("key")
        removed = (
            units.join(boilerplate, "key", "left_semi")
            .groupBy("id", "doc")
            .agg(F.collect_set("pos").alias("positions"))
        )
        marked = rewritten_documents(keyed, removed, config).localCheckpoint()
        seen = units.count()
    finally:
        units.unpersist()
    totals = marked.agg(
        F.sum("_units_removed").alias("removed"),
        F.sum("_bytes_removed").alias("bytes_removed"),
        F.count(F.when(F.col("_units_removed") > 0, True)).alias("changed"),
    ).first()
    stats = {
        "paragraphs_seen": int(seen),
        "paragraphs_removed": int(totals["removed"] or 0),
        "paragraph_bytes_removed": int(totals["bytes_removed"] or 0),
        "paragraph_documents_changed": int(totals["changed"] or 0),
    }
    drops = marked.filter(F.col("drop_reason").isNotNull()).select("id", "drop_reason")
    return marked.select(*docs.columns), drops, stats
