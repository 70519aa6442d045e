"""Encode curated documents into binary token shards with Spark (format: model/token_format.py).

Each document goes to a split by a fixed hash rule (tasks/tokenize/split.py) and to one of
`partitions` contiguous ranges of a hash (`order_rule`; `partitions` grows with the corpus, one
per `partition_mb` MB of text, so that a partition's sort fits in memory); within a partition
the documents are sorted by (split, id), or with `shuffle` by (split, sha256(f"{seed}:{id}")),
whose ranges also choose the partition, so the partitions laid end to end are one seeded global
permutation. The keys are
Spark SQL expressions and the sort runs in the JVM (it spills to disk, so memory does not grow
with the corpus); executors receive Arrow batches (`mapInArrow`), load the tokenizer once, encode
with one tokenizer thread per task core, append the end-of-text id to every document and write
their own shards of about `shard_tokens` tokens straight into `out_dir`. Shards are named after
the hash partition found in the data, not the Spark partition, so the same documents and config
give byte-identical shards on any cluster. Only names, counts and checksums reach the driver.

Edge cases: a document with no text (null or "") or no id is skipped and counted; a document
longer than `shard_tokens` gets a shard of its own (documents never straddle shards, and none is
split); Parquet strings should be UTF-8, but a writer can store other bytes: each invalid byte
sequence is decoded as U+FFFD (Python's "replace") and such documents are counted, so what the
shards hold is exactly the text with those replacements.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark import Broadcast
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from tokenizers import Tokenizer

from model.files import sha256_file
from model.token_format import FORMAT_VERSION, HEADER_BYTES, MAGIC, TOKEN_DTYPES, token_width
from model.tokenizer import end_of_text
from tasks.common.spark import local_input_files, session_conf
from tasks.config import TokenizeConfig
from tasks.tokenize.bpe import documents_frame, no_documents_error
from tasks.tokenize.mix import mixed_documents, token_counts
from tasks.tokenize.shard_writer import COUNTERS, ENCODE_BATCH_DOCS, write_partition
from tasks.tokenize.split import SPLITS, hex_int, split_column, split_rule, val_threshold

ARROW_BATCH = {  # bounds one Arrow batch in the Python worker, whatever the corpus size
    "spark.sql.execution.arrow.maxRecordsPerBatch": str(ENCODE_BATCH_DOCS),
    "spark.sql.execution.arrow.maxBytesPerBatch": str(64 << 20),
}


def order_rule(config: TokenizeConfig) -> dict[str, Any]:
    """How documents are laid out in shards, as recorded in the manifest's `order`."""
    n = config.partitions
    if config.shuffle:
        key = f"sha256(f'{config.shuffle_seed}:{{id}}')"
        rule = f"partition int({key}[:8], 16) * {n} >> 32, then (split, {key}, id)"
    else:
        rule = f"partition int(sha256(id)[8:16], 16) * {n} >> 32, then (split, id)"
    return {
        "rule": rule + " within a partition; each document followed by eot_id",
        "shuffle": config.shuffle,
        "shuffle_seed": config.shuffle_seed if config.shuffle else None,
    }


def _key_columns(config: TokenizeConfig, layout_id: Column | None = None) -> dict[str, Column]:
    """The split (split.py, by `id`), partition and sort key of each document (by `layout_id`,
    default `id`: a mixed copy's own id), as SQL (mirrors `order_rule`)."""
    layout_id = F.col("id") if layout_id is None else layout_id
    in_split = split_column(F.sha2(F.col("id"), 256), val_threshold(config.val_fraction))
    digest = F.sha2(layout_id, 256)
    if config.shuffle:
        key = F.sha2(F.concat(F.lit(f"{config.shuffle_seed}:"), layout_id), 256)
        part = F.shiftright(hex_int(key, 1) * config.partitions, 32)
    else:
        key, part = layout_id, F.shiftright(hex_int(digest, 9) * config.partitions, 32)
    # a document without id sorts first and is skipped (and counted) by the writer
    return {
        "_part": F.coalesce(part, F.lit(0)),
        "_split": F.coalesce(in_split, F.lit("train")),
        "_key": F.coalesce(key, F.lit("")),
    }


def _laid_out(
    spark: SparkSession, docs_uri: str, config: TokenizeConfig, tokenizer: Broadcast[str]
) -> tuple[DataFrame, dict[str, Any] | None, DataFrame | None]:
    """(id, text, _part, _split, _key) of every document to write, the manifest's `mix`
    record (None without `tokenize.mix`) and the persisted frame to release after the write."""
    frame = documents_frame(spark, docs_uri)
    if not config.mix:
        return (
            frame.select("id", "text", *[c.alias(n) for n, c in _key_columns(config).items()]),
            None,
            None,
        )
    if "source" not in frame.columns:
        raise ValueError(
            f"tokenize.mix is set but {docs_uri} has no `source` column: re-run the curate "
            "step, or set tokenize.mix = {} for the natural mix"
        )
    split = _key_columns(config)["_split"]
    counted = token_counts(frame.select("id", "text", "source", split.alias("_split")), tokenizer)
    counted = counted.persist()
    mixed, record = mixed_documents(counted, config)
    copy_id = F.when(F.col("_copy") == 0, F.col("id")).otherwise(
        F.concat(F.col("id"), F.lit("#"), F.col("_copy").cast("string"))
    )
    keys = _key_columns(config, copy_id)
    laid = mixed.select(
        copy_id.alias("id"),
        "text",
        keys["_part"].alias("_part"),
        "_split",
        keys["_key"].alias("_key"),
    )
    return laid, record, counted


def text_bytes(spark: SparkSession, docs_uri: str) -> int | None:
    """Uncompressed bytes of the `text` column of the Parquet files under `docs_uri`, summed from
    their footers on the driver; None when a file is not local or has no readable footer."""
    files = local_input_files(spark.read.parquet(docs_uri))
    if files is None:
        return None
    total = 0
    for path in files:
        try:
            meta = pq.read_metadata(path)
        except (OSError, pa.ArrowException):
            return None
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for c in range(group.num_columns):
                if group.column(c).path_in_schema == "text":
                    total += group.column(c).total_uncompressed_size
    return total


def effective_partitions(spark: SparkSession, docs_uri: str, config: TokenizeConfig) -> int:
    """`config.partitions`, or more: one per `config.partition_mb` MB of text."""
    size = text_bytes(spark, docs_uri)
    if size is None or config.partition_mb <= 0:
        return config.partitions
    return max(config.partitions, math.ceil(size / (config.partition_mb << 20)))


def _write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))
    os.replace(tmp, path)


def partition_keys(spark: SparkSession, n: int) -> list[int]:
    """For each layout partition p in 0..n-1, the smallest int whose Spark hash partition
    (pmod(hash(v), n), as `repartition(n, column)` places rows) is p. Repartitioning by these
    keys puts exactly the documents of layout partition p in Spark partition p: no partition
    left empty or holding two, and no sampling pass over the corpus as range partitioning
    needs. 64 n candidates leave a partition without one with probability ~n e^-64."""
    candidates = spark.range(0, 64 * n).select(F.col("id").cast("int").alias("v"))
    placed = candidates.select("v", F.expr(f"pmod(hash(v), {n})").alias("p"))
    found = {row.p: row.v for row in placed.groupBy("p").agg(F.min("v").alias("v")).collect()}
    if len(found) < n:  # not seen in practice; a clear error rather than a skewed layout
        raise RuntimeError(f"no hash key found for partitions {sorted(set(range(n)) - set(found))}")
    return [found[p] for p in range(n)]


def _encode_and_write(
    spark: SparkSession,
    docs_uri: str,
    tokenizer_json: str,
    eot_id: int,
    config: TokenizeConfig,
    out_dir: Path,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Run the Spark job; the executors' manifest entries and counters, and the mix record."""
    tokenizer = spark.sparkContext.broadcast(tokenizer_json)
    keyed, mix, persisted = _laid_out(spark, docs_uri, config, tokenizer)
    # Spark partition p holds layout partition p (shard names come from `_part` in the data)
    keys = F.array(*[F.lit(key) for key in partition_keys(spark, config.partitions)])
    spread = keyed.repartition(
        config.partitions, F.element_at(keys, (F.col("_part") + 1).cast("int"))
    )
    ordered = spread.sortWithinPartitions("_part", "_split", "_key", "id", "text")
    writer = partial(
        write_partition,
        out_dir=str(out_dir),
        tokenizer_json=tokenizer,
        eot_id=eot_id,
        shard_tokens=config.shard_tokens,
    )
    try:
        with session_conf(spark, ARROW_BATCH):
            # text travels as bytes: invalid UTF-8 reaches `_decode` instead of failing in Arrow
            text = F.col("text").cast("binary").alias("text")
            rows = ordered.select("id", text, "_part", "_split").mapInArrow(writer, "entry string")
            return [json.loads(row.entry) for row in rows.collect()], mix
    finally:
        tokenizer.unpersist()
        if persisted is not None:
            persisted.unpersist()


def write_shards(
    spark: SparkSession,
    docs_uri: str,
    tokenizer_path: Path,
    config: TokenizeConfig,
    out_dir: Path,
) -> dict[str, Any]:
    """Tokenize every document of `docs_uri` into shards + `manifest.json` in `out_dir`."""
    config = replace(config, partitions=effective_partitions(spark, docs_uri, config))
    tokenizer_json = Path(tokenizer_path).read_text(encoding="utf-8")
    tokenizer = Tokenizer.from_str(tokenizer_json)
    vocab_size = tokenizer.get_vocab_size()
    eot_id = tokenizer.token_to_id(end_of_text(tokenizer_path))
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    results, mix = _encode_and_write(spark, docs_uri, tokenizer_json, eot_id, config, out_dir)
    entries = sorted((r for r in results if "file" in r), key=lambda entry: entry["file"])
    counts = {c: sum(r["counts"][c] for r in results if "counts" in r) for c in COUNTERS}
    if not entries:
        raise no_documents_error(docs_uri)
    totals = {
        split: {
            "shards": sum(1 for e in entries if e["split"] == split),
            "docs": sum(e["docs"] for e in entries if e["split"] == split),
            "tokens": sum(e["tokens"] for e in entries if e["split"] == split),
        }
        for split in SPLITS
    }
    width = token_width(vocab_size)
    manifest = {
        "format": "lmforge-token-shards",
        "format_version": FORMAT_VERSION,
        "magic": MAGIC,
        "header_bytes": HEADER_BYTES,
        "dtype": TOKEN_DTYPES[width].name,
        "token_bytes": width,
        "vocab_size": vocab_size,
        "eot_id": eot_id,
        "tokenizer": Path(tokenizer_path).name,
        "tokenizer_sha256": sha256_file(tokenizer_path),
        "split_rule": split_rule(config.val_fraction),
        "order": order_rule(config),
        "shards": entries,
        "totals": totals,
    }
    if mix is not None:
        manifest["mix"] = mix
    _write_json_atomic(out_dir / "manifest.json", manifest)
    return {
        "docs": sum(t["docs"] for t in totals.values()),
        "tokens": sum(t["tokens"] for t in totals.values()),
        "shards": len(entries),
        "splits": totals,
        "dtype": manifest["dtype"],
        "vocab_size": vocab_size,
        **({"mix": mix} if mix is not None else {}),
        **counts,
    }
