"""Near-duplicate removal: MinHash LSH candidates, verified, merged into components, in Spark.

Incremental across crawls: the curate output stores `minhash_index/` (id, signature,
band_keys) for every document kept so far. Given an earlier output, its documents join the
graph as nodes that sort first ("0" + id; this crawl's are "1" + id), so a cluster holding an
earlier document drops every new member as `near_duplicate_previous`; otherwise the smallest
id survives and the others are `near_duplicate`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from tasks.common.spark import spark_session
from tasks.config import CurateConfig, SparkConfig
from tasks.curate.components import bucket_stats, candidate_pairs, components, lsh_buckets
from tasks.curate.minhash import minhash_table, similar_pairs

INDEX_DIR = "minhash_index"
PARAMS_FILE = "minhash_params.json"


def minhash_params(config: CurateConfig) -> dict[str, int]:
    """The settings two band indexes must share to be comparable."""
    return {
        "ngram": config.minhash_ngram,
        "bands": config.minhash_bands,
        "rows": config.minhash_rows,
        "seed": config.minhash_seed,
    }


def read_previous_index(spark: SparkSession, config: CurateConfig) -> DataFrame | None:
    """The stored (id, signature, band_keys) of `config.previous_output`, checked; or None."""
    if not config.previous_output:
        return None
    folder = Path(config.previous_output)
    if not (folder / "_SUCCESS").is_file() or not (folder / INDEX_DIR).is_dir():
        raise FileNotFoundError(
            f"curate.previous_output={folder} is not a complete curate output with a "
            f"{INDEX_DIR}/ folder; point it at <work_dir>/curate/<fingerprint> of an earlier run"
        )
    stored = json.loads((folder / PARAMS_FILE).read_text())
    if stored != minhash_params(config):
        raise ValueError(
            f"curate.previous_output was indexed with MinHash settings {stored}, this run uses "
            f"{minhash_params(config)}: set the curate.minhash_* settings to match"
        )
    return spark.read.parquet(str(folder / INDEX_DIR))


def near_duplicates(
    docs: DataFrame,
    previous: DataFrame | None,
    config: CurateConfig,
    stats: dict[str, int] | None = None,
) -> tuple[DataFrame, DataFrame]:
    """(id, drop_reason) of near-duplicates in `docs`, and the MinHash table of `docs`; the
    LSH bucket counts (`bucket_stats`) are added to `stats` when given."""
    table = minhash_table(
        docs, config.minhash_ngram, config.minhash_bands, config.minhash_rows, config.minhash_seed
    ).persist()
    nodes = table.select(F.concat(F.lit("1"), "id").alias("node"), "signature", "band_keys")
    if previous is not None:
        earlier = previous.select(
            F.concat(F.lit("0"), "id").alias("node"), "signature", "band_keys"
        )
        nodes = nodes.union(earlier)
    index = nodes.select("node", F.posexplode("band_keys").alias("band", "key"))
    # dst > src and new nodes sort last: a pair with a new node always has it as dst.
    buckets = lsh_buckets(index, config.minhash_max_bucket).persist()
    if stats is not None:
        stats.update(bucket_stats(buckets, config.minhash_max_bucket))
    pairs = candidate_pairs(buckets).filter(F.col("dst").startswith("1"))
    if config.min_estimated_jaccard > 0:
        num_perm = config.minhash_bands * config.minhash_rows
        pairs = similar_pairs(pairs, nodes, num_perm, config.min_estimated_jaccard)
    clusters = components(pairs, config.components_max_iterations)
    dropped = clusters.filter((F.col("node") != F.col("component")) & F.col("node").startswith("1"))
    reason = F.when(F.col("component").startswith("0"), F.lit("near_duplicate_previous")).otherwise(
        F.lit("near_duplicate")
    )
    return dropped.select(
        F.expr("substring(node, 2)").alias("id"), reason.alias("drop_reason")
    ), table


def write_index(
    table: DataFrame,
    kept_ids: DataFrame,
    previous: DataFrame | None,
    config: CurateConfig,
    out_dir: Path,
) -> None:
    """Store the band index of everything kept so far: earlier outputs' plus this run's kept."""
    kept = table.join(kept_ids, "id", "left_semi")
    if previous is not None:
        kept = kept.union(previous.select(*table.columns))
    kept.write.mode("error").parquet(str(out_dir / INDEX_DIR))
    (out_dir / PARAMS_FILE).write_text(json.dumps(minhash_params(config), sort_keys=True))


def main(argv: list[str] | None = None) -> None:
    """`python -m tasks.curate.near_dedup --input DIR --output DIR`: the curate step's near dedup
    alone, on a Parquet folder of (id, text); writes `dropped/` (id, drop_reason) and
    `stats.json` under the output folder (built beside it, then renamed)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--input", required=True, help="Parquet folder with id and text columns")
    parser.add_argument("--output", required=True, help="folder to create (must not exist)")
    parser.add_argument("--master", default=SparkConfig.master, help="Spark master URL")
    parser.add_argument("--shuffle-partitions", type=int, default=SparkConfig.shuffle_partitions)
    args = parser.parse_args(argv)
    out = Path(args.output)
    if out.exists():
        raise FileExistsError(f"--output {out} exists; remove it or name a new folder")
    started = time.perf_counter()
    spark = spark_session(
        SparkConfig(master=args.master, shuffle_partitions=args.shuffle_partitions)
    )
    config, stats = CurateConfig(), {}
    docs = spark.read.parquet(args.input).select("id", "text")
    dropped, _ = near_duplicates(docs, None, config, stats)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    dropped.write.parquet(str(partial / "dropped"))
    counts = spark.read.parquet(str(partial / "dropped")).groupBy("drop_reason").count().collect()
    stats.update({f"dropped_{r['drop_reason']}": r["count"] for r in counts})
    stats["seconds"] = round(time.perf_counter() - started, 3)
    (partial / "stats.json").write_text(json.dumps(stats, indent=2, sort_keys=True))
    partial.rename(out)


if __name__ == "__main__":
    main()
