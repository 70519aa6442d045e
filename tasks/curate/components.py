"""Candidate pairs from LSH buckets, and their connected components, as Spark operations.

Components use min-label propagation: every node starts labelled with itself and repeatedly
takes the smallest label among itself and its neighbours. After k rounds each node holds the
smallest node within k hops, so the loop ends after (component diameter + 1) rounds; it is
bounded by `max_iterations` and fails loudly rather than return half-merged clusters. Node
names sort so that the wanted survivor of a cluster is its smallest node.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def candidate_pairs(index: DataFrame) -> DataFrame:
    """Distinct (src, dst) with src < dst for nodes sharing a key in the same band.

    `index` has columns (node, band, key).
    """
    left, right = index.alias("l"), index.alias("r")
    same_bucket = (
        (F.col("l.band") == F.col("r.band"))
        & (F.col("l.key") == F.col("r.key"))
        & (F.col("l.node") < F.col("r.node"))
    )
    pairs = left.join(right, same_bucket).select(
        F.col("l.node").alias("src"), F.col("r.node").alias("dst")
    )
    return pairs.distinct()


def connected_components(edges: DataFrame, max_iterations: int = 50) -> DataFrame:
    """(node, component) for every node on an edge; component = the smallest node in it."""
    both = edges.select("src", "dst").union(edges.select(F.col("dst").alias("src"), "src"))
    both = both.localCheckpoint()
    labels = both.select(F.col("src").alias("node")).distinct()
    labels = labels.withColumn("component", F.col("node")).localCheckpoint()
    for _ in range(max_iterations):
        offers = both.join(labels, both.src == labels.node).select(
            F.col("dst").alias("node"), F.col("component")
        )
        updated = (
            labels.union(offers).groupBy("node").agg(F.min("component").alias("component"))
        ).localCheckpoint()
        changed = (
            updated.alias("u")
            .join(labels.alias("o"), "node")
            .filter(F.col("u.component") != F.col("o.component"))
            .count()
        )
        labels = updated
        if changed == 0:
            return labels
    raise RuntimeError(
        f"connected components did not converge in {max_iterations} rounds: some near-duplicate "
        "cluster is a very long chain; raise curate.components_max_iterations"
    )
