"""Candidate edges from LSH buckets, and their connected components, as Spark operations.

A bucket (same band, same key) becomes a star: an edge from its smallest node to each other
member. That connects exactly what all pairs of the bucket would connect, with k - 1 edges
instead of k(k-1)/2, and without a self-join of the band index.

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
    """Distinct (src, dst), src < dst: each bucket's smallest node to every other member.

    `index` has columns (node, band, key).
    """
    buckets = (
        index.groupBy("band", "key")
        .agg(F.array_sort(F.collect_set("node")).alias("members"))
        .filter(F.size("members") > 1)
    )
    return buckets.select(
        F.col("members")[0].alias("src"),
        F.explode(F.slice("members", 2, F.size("members") - 1)).alias("dst"),
    ).distinct()


def connected_components(edges: DataFrame, max_iterations: int = 50) -> DataFrame:
    """(node, component) for every node on an edge; component = the smallest node in it."""
    both = edges.select("src", "dst").union(edges.select(F.col("dst").alias("src"), "src"))
    both = both.localCheckpoint()
    labels = both.groupBy(F.col("src").alias("node")).agg(F.min("dst").alias("component"))
    labels = labels.select(
        "node", F.least("node", "component").alias("component")
    ).localCheckpoint()
    for _ in range(max_iterations):
        # Each node offers its label to its neighbours; `before` keeps its own label to compare.
        offers = both.join(labels, both.src == labels.node).select(
            F.col("dst").alias("node"), "component", F.lit(None).cast("string").alias("before")
        )
        own = labels.select("node", "component", F.col("component").alias("before"))
        updated = (
            own.union(offers)
            .groupBy("node")
            .agg(F.min("component").alias("component"), F.max("before").alias("before"))
            .localCheckpoint()
        )
        labels = updated.select("node", "component")
        if updated.filter(F.col("component") != F.col("before")).isEmpty():
            return labels
    raise RuntimeError(
        f"connected components did not converge in {max_iterations} rounds: some near-duplicate "
        "cluster is a very long chain; raise curate.components_max_iterations"
    )
