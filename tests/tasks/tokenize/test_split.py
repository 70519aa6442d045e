"""The split rule's two forms (tasks/tokenize/split.py): Spark SQL and Python agree on every id."""

from __future__ import annotations

import hashlib

from pyspark.sql import functions as F

from tasks.tokenize.split import BUCKETS, split_column, split_of, split_rule, val_threshold

THRESHOLDS = [0, 1, 500, 5000, BUCKETS - 1, BUCKETS]


def ids() -> list[str]:
    """10,000 ids: sha256 hex ids as the crawl makes them, plus odd strings (empty, non-ASCII)."""
    made = [hashlib.sha256(f"https://example.org/{i}".encode()).hexdigest() for i in range(9_990)]
    return made + ["", "a", "naïve café", "日本語", "🎉", "x" * 1000, " ", "\t\n", "0", "ff"]


def test_spark_and_python_split_agree_on_10000_ids(spark) -> None:
    doc_ids = ids()
    frame = spark.createDataFrame([(i,) for i in doc_ids], "id string")
    digest = F.sha2(F.col("id"), 256)
    columns = [split_column(digest, t).alias(f"t{t}") for t in THRESHOLDS]
    rows = frame.select("id", *columns).collect()
    assert [row.id for row in rows] == doc_ids
    for t in THRESHOLDS:
        assert [row[f"t{t}"] for row in rows] == [split_of(i, t) for i in doc_ids], t
    at_500 = [split_of(i, 500) for i in doc_ids]
    assert 300 < at_500.count("val") < 700  # ~5% of the ids


def test_a_null_id_goes_to_train_in_spark(spark) -> None:
    frame = spark.createDataFrame([(None,)], "id string")
    [row] = frame.select(split_column(F.sha2(F.col("id"), 256), BUCKETS).alias("s")).collect()
    assert row.s == "train"


def test_the_manifest_rule_is_unchanged() -> None:
    assert split_rule(0.05) == {
        "rule": "val if int(sha256(id.encode('utf-8')).hexdigest()[:8], 16) % 10000 < 500, "
        "else train",
        "val_fraction": 0.05,
        "val_threshold": 500,
        "buckets": 10000,
    }
    assert val_threshold(0.0) == 0 and val_threshold(0.001) == 10
