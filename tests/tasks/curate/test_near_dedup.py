"""MinHash LSH dedup in Spark: components, planted-set precision/recall, incremental index."""

from __future__ import annotations

import sys
from pathlib import Path

from pyspark.sql import functions as F

from tasks.config import CurateConfig
from tasks.curate.components import connected_components
from tasks.curate.near_dedup import near_duplicates

sys.path.insert(0, str(Path(__file__).parent))
from planted import book_passages, planted_set  # noqa: E402

FRACTIONS = [0.0, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2]


def test_components_merge_chains_and_keep_smallest_node(spark):
    edges = spark.createDataFrame(
        [("b", "c"), ("c", "d"), ("a", "d"), ("x", "y")], "src string, dst string"
    )
    labels = {r["node"]: r["component"] for r in connected_components(edges).collect()}
    assert labels == {"a": "a", "b": "a", "c": "a", "d": "a", "x": "x", "y": "x"}


def test_planted_near_duplicates_precision_and_recall(spark, shared_corpus):
    passages = book_passages(shared_corpus / "books")[:300]
    docs, pairs = planted_set(passages, FRACTIONS)
    frame = spark.createDataFrame(docs, "id string, text string").repartition(2)
    dropped, _ = near_duplicates(frame, None, CurateConfig())
    removed = {r["id"] for r in dropped.collect()}
    truth = {copy: j for _, copy, j in pairs}
    high = [copy for copy, j in truth.items() if j >= 0.85]
    recall = sum(c in removed for c in high) / len(high)
    correct = sum(1 for d in removed if truth.get(d, 0.0) >= 0.5)
    precision = correct / max(len(removed), 1)
    low_removed = [d for d in removed if truth.get(d, 0.0) < 0.5]
    print(f"planted: {len(high)} pairs >= 0.85, recall {recall:.3f}, precision {precision:.3f}")
    assert recall >= 0.95
    assert precision >= 0.98
    assert not any(d.startswith("a") for d in removed)  # originals always survive
    assert len(low_removed) <= 0.02 * len(removed)


def test_second_crawl_is_deduplicated_against_the_first(spark, tmp_path):
    first = [(f"p{i}", " ".join(f"w{i}x{k}" for k in range(80))) for i in range(3)]
    second = [("q0", first[0][1].replace("w0x79", "changed")), ("q1", "new words " * 40)]
    config = CurateConfig()
    schema = "id string, text string"
    _, table = near_duplicates(spark.createDataFrame(first, schema), None, config)
    table.write.parquet(str(tmp_path / "index"))
    previous = spark.read.parquet(str(tmp_path / "index"))
    dropped, _ = near_duplicates(spark.createDataFrame(second, schema), previous, config)
    reasons = {r["id"]: r["drop_reason"] for r in dropped.collect()}
    assert reasons == {"q0": "near_duplicate_previous"}
    alone, _ = near_duplicates(spark.createDataFrame(second, schema), None, config)
    assert alone.filter(F.col("id") == "q0").count() == 0
