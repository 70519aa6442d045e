"""Candidate edges from LSH buckets, and their connected components.

A bucket (same band, same key) becomes a star: an edge from its smallest node to each other
member. That connects exactly what all pairs of the bucket would connect, with k - 1 edges
instead of k(k-1)/2, and without a self-join of the band index. A bucket of more than
`max_bucket` members keeps only its `max_bucket` smallest nodes: the surplus is not compared in
that band (it may still meet them in another band). This bounds the work of a degenerate bucket
(thousands of near-empty documents sharing every band) at the price of missing duplicates that
only such a bucket would find; the stats count the capped buckets and the skipped members.

Components: when the edges are few (at most `DRIVER_MAX_EDGES`), they are collected and merged
on the driver with scipy (a sparse graph of int32 node numbers: about 40 bytes per edge).
Otherwise min-label propagation in Spark: every node starts labelled with itself and
repeatedly takes the smallest label among itself and its neighbours. After k rounds each node
holds the smallest node within k hops, so the loop ends after (component diameter + 1) rounds;
it is bounded by `max_iterations` and fails loudly rather than return half-merged clusters.
Node names sort so that the wanted survivor of a cluster is its smallest node.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components as graph_components

DRIVER_MAX_EDGES = 5_000_000  # more edges than this: components found by Spark joins


def lsh_buckets(index: DataFrame, max_bucket: int) -> DataFrame:
    """(members, size) of every bucket of more than one node; `members` is sorted and holds
    at most `max_bucket` nodes, `size` counts them all. `index` has columns (node, band, key)."""
    return (
        index.groupBy("band", "key")
        .agg(F.array_sort(F.collect_set("node")).alias("members"))
        .select(F.slice("members", 1, max_bucket).alias("members"), F.size("members").alias("size"))
        .filter(F.col("size") > 1)
    )


def bucket_stats(buckets: DataFrame, max_bucket: int) -> dict[str, int]:
    """lsh_buckets (of more than one node), lsh_buckets_capped and lsh_bucket_members_skipped."""
    row = buckets.agg(
        F.count("*").alias("buckets"),
        F.sum((F.col("size") > max_bucket).cast("long")).alias("capped"),
        F.sum(F.greatest(F.col("size") - max_bucket, F.lit(0))).alias("skipped"),
    ).first()
    return {
        "lsh_buckets": int(row["buckets"]),
        "lsh_buckets_capped": int(row["capped"] or 0),
        "lsh_bucket_members_skipped": int(row["skipped"] or 0),
    }


def candidate_pairs(buckets: DataFrame) -> DataFrame:
    """Distinct (src, dst), src < dst: each bucket's smallest node to every other member."""
    return buckets.select(
        F.col("members")[0].alias("src"),
        F.explode(F.slice("members", 2, F.size("members") - 1)).alias("dst"),
    ).distinct()


def components(edges: DataFrame, max_iterations: int = 50) -> DataFrame:
    """(node, component) for every node on an edge; on the driver when the edges are few."""
    collected = edges.select("src", "dst").limit(DRIVER_MAX_EDGES + 1).toArrow()
    if collected.num_rows > DRIVER_MAX_EDGES:
        return connected_components(edges, max_iterations)
    found = driver_components(collected).to_pandas()
    return edges.sparkSession.createDataFrame(found, "node string, component string")


def driver_components(edges: pa.Table) -> pa.Table:
    """(node, component) of an Arrow (src, dst) edge table, merged with scipy in memory."""
    if edges.num_rows == 0:
        return pa.table({"node": pa.array([], pa.string()), "component": pa.array([], pa.string())})
    ends = pa.chunked_array(edges.column("src").chunks + edges.column("dst").chunks)
    nodes = pc.unique(ends)
    nodes = nodes.take(pc.sort_indices(nodes))  # node number = rank, so smaller number = smaller
    src = pc.index_in(edges.column("src"), value_set=nodes).to_numpy().astype(np.int32)
    dst = pc.index_in(edges.column("dst"), value_set=nodes).to_numpy().astype(np.int32)
    n = len(nodes)
    graph = coo_matrix((np.ones(len(src), dtype=np.int8), (src, dst)), shape=(n, n))
    _, label = graph_components(graph, directed=False)
    smallest = np.full(label.max() + 1, n, dtype=np.int64)
    np.minimum.at(smallest, label, np.arange(n))
    return pa.table({"node": nodes, "component": nodes.take(pa.array(smallest[label]))})


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
