"""LSH buckets are capped at curate.minhash_max_bucket; components merged on the driver."""

from __future__ import annotations

from tasks.config import CurateConfig
from tasks.curate.components import components, connected_components
from tasks.curate.near_dedup import near_duplicates


def test_degenerate_buckets_are_capped_and_counted(spark):
    # 3,000 near-empty documents: one word each, so every band of every one shares one key.
    near_empty = [(f"e{i:05d}", "ok" if i % 2 else "OK!") for i in range(3000)]
    distinct = [(f"w{i}", " ".join(f"word{i}x{k}" for k in range(60))) for i in range(20)]
    frame = spark.createDataFrame(near_empty + distinct, "id string, text string")
    config, stats = CurateConfig(minhash_max_bucket=100), {}
    dropped, _ = near_duplicates(frame, None, config, stats)
    ids = {r["id"] for r in dropped.collect()}
    bands = config.minhash_bands
    assert stats["lsh_buckets"] == bands  # the distinct documents share no bucket
    assert stats["lsh_buckets_capped"] == bands
    assert stats["lsh_bucket_members_skipped"] == bands * (3000 - 100)
    # each band keeps the same 100 smallest ids: they merge, the rest are never compared
    assert ids == {f"e{i:05d}" for i in range(1, 100)}


def test_driver_components_match_spark_components(spark):
    edges = spark.createDataFrame(
        [("b", "c"), ("c", "d"), ("a", "d"), ("x", "y"), ("y", "z"), ("m", "n")],
        "src string, dst string",
    )
    on_driver = {r["node"]: r["component"] for r in components(edges).collect()}
    in_spark = {r["node"]: r["component"] for r in connected_components(edges).collect()}
    assert on_driver == in_spark
    assert on_driver["d"] == "a" and on_driver["z"] == "x" and on_driver["n"] == "m"
