"""Curate, first stage: a length floor and exact deduplication on normalised text, in Spark.

Normalisation (lower case, punctuation and symbols dropped, whitespace collapsed) makes copies
that differ only in case, spacing or punctuation collide. The survivor of each group is the
document with the smallest id, so the result does not depend on partitioning. Every input
document ends up either in `docs/` or in `dropped/` with its `drop_reason`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from tasks.config import CurateConfig


def normalised_text_hash(text: F.Column) -> F.Column:
    """sha256 of the text after lower-casing, punctuation removal and whitespace collapse."""
    no_punct = F.regexp_replace(F.lower(text), r"[\p{P}\p{S}]+", " ")
    collapsed = F.trim(F.regexp_replace(no_punct, r"\s+", " "))
    return F.sha2(collapsed, 256)


def curate_documents(
    spark: SparkSession, docs_uri: str, config: CurateConfig, out_dir: Path
) -> dict[str, Any]:
    """Write kept documents to `out_dir/docs` and rejects to `out_dir/dropped`; return counts."""
    docs = spark.read.parquet(docs_uri)
    n_input = docs.count()
    if n_input == 0:
        raise ValueError(
            f"curate: no documents in {docs_uri}; check the crawl and extract steps' stats.json"
        )
    too_short = F.length(F.trim("text")) < config.min_chars
    marked = docs.withColumn("_hash", normalised_text_hash(F.col("text")))
    rank = F.row_number().over(Window.partitionBy("_hash").orderBy("id"))
    marked = marked.withColumn(
        "drop_reason",
        F.when(too_short, F.lit("too_short"))
        .when(rank > 1, F.lit("exact_duplicate"))
        .otherwise(F.lit(None).cast("string")),
    ).drop("_hash")
    marked = marked.persist()
    try:
        kept = marked.filter(F.col("drop_reason").isNull()).drop("drop_reason")
        dropped = marked.filter(F.col("drop_reason").isNotNull())
        _write(kept, out_dir / "docs")
        _write(dropped, out_dir / "dropped")
        reasons = {
            r["drop_reason"]: r["count"] for r in dropped.groupBy("drop_reason").count().collect()
        }
    finally:
        marked.unpersist()
    n_kept = spark.read.parquet(str(out_dir / "docs")).count()
    stats: dict[str, Any] = {"input": n_input, "kept": n_kept}
    stats.update({f"dropped_{reason}": count for reason, count in sorted(reasons.items())})
    if n_kept + sum(reasons.values()) != n_input:
        raise RuntimeError(f"curate lost documents: {stats}")
    return stats


def _write(frame: DataFrame, path: Path) -> None:
    frame.orderBy("id").write.mode("error").parquet(str(path))
