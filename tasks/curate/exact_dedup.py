"""Exact deduplication on normalised text, in Spark.

Normalisation (lower case, punctuation and symbols dropped, whitespace collapsed) makes copies
that differ only in case, spacing or punctuation collide. The survivor of each group is the
document with the smallest id, so the result does not depend on partitioning.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F


def normalised_text_hash(text: F.Column) -> F.Column:
    """sha256 of the text after lower-casing, punctuation removal and whitespace collapse."""
    no_punct = F.regexp_replace(F.lower(text), r"[\p{P}\p{S}]+", " ")
    collapsed = F.trim(F.regexp_replace(no_punct, r"\s+", " "))
    return F.sha2(collapsed, 256)


def exact_duplicate_ids(docs: DataFrame) -> DataFrame:
    """(id, drop_reason="exact_duplicate") for every copy but the smallest id of its group."""
    rank = F.row_number().over(Window.partitionBy("_hash").orderBy("id"))
    hashed = docs.select("id", normalised_text_hash(F.col("text")).alias("_hash"))
    copies = hashed.withColumn("_rank", rank).filter(F.col("_rank") > 1)
    return copies.select("id", F.lit("exact_duplicate").alias("drop_reason"))
