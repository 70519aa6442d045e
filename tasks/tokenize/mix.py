"""Per-source mixing of the train split (`tokenize.mix`): each source's share of train tokens.

A weight is a source's target share of the train split's tokens (weights are normalised to sum
to 1; the total stays the natural train token count). A source's documents are repeated
`epochs` = target / natural tokens times: every document `floor(epochs)` times, plus the first
documents in `sha256(f"{mix_seed}:{id}")` order until the fraction's tokens are reached (one
document past it at most), so a weight below the natural share down-samples. Tokens are counted
with the step's tokenizer (each document with its end-of-text id), so the shares hold in tokens,
not bytes. The validation split is never mixed. A repeated copy k >= 1 is laid out under the
id `f"{id}#{k}"` (its order and hash partition), in the split of its original document.
"""

from __future__ import annotations

import math
from typing import Any

from pyspark import Broadcast
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from tasks.config import TokenizeConfig
from tasks.tokenize.shard_writer import count_partition


def token_counts(frame: DataFrame, tokenizer_json: Broadcast[str]) -> DataFrame:
    """`frame` (id, text, ...) with `n_tokens`: each text's tokens, plus its end-of-text id."""
    counted = frame.select("id", F.col("text").cast("binary").alias("text")).mapInArrow(
        lambda batches: count_partition(batches, tokenizer_json=tokenizer_json),
        "id string, n_tokens long",
    )
    return frame.join(counted, "id")


def epochs_per_source(natural: dict[str, int], config: TokenizeConfig) -> dict[str, float]:
    """Each source's epochs from its natural train tokens and `config.mix`; a source with data
    and no weight, or a weight for a source without data, is an error naming the setting."""
    unweighted = sorted(s for s in natural if s not in config.mix)
    if unweighted:
        raise ValueError(
            f"tokenize.mix has no weight for source(s) {unweighted} found in the curated data "
            f"(sources: {sorted(natural)}): give each a weight (0 leaves it out)"
        )
    empty = sorted(s for s in config.mix if config.mix[s] > 0 and not natural.get(s))
    if empty:
        raise ValueError(
            f"tokenize.mix weights source(s) {empty}, which have no train documents (sources "
            f"with data: {sorted(natural)}): remove them or set their weight to 0"
        )
    total = sum(natural.values())
    weights = sum(config.mix[s] for s in natural)
    return {s: config.mix[s] / weights * total / n for s, n in natural.items()}


def mixed_documents(counted: DataFrame, config: TokenizeConfig) -> tuple[DataFrame, dict[str, Any]]:
    """`counted` (id, text, source, _split, n_tokens: `token_counts`) with each train document
    repeated as the mix says, a `_copy` column (0: the original); the manifest's `mix` record."""
    train = F.col("_split") == "train"
    rows = (
        counted.where(train)
        .groupBy("source")
        .agg(F.count("*").alias("docs"), F.sum("n_tokens").alias("tokens"))
    )
    natural = {r["source"]: (r["docs"], r["tokens"]) for r in rows.collect()}
    epochs = epochs_per_source({s: t for s, (_, t) in natural.items()}, config)
    whole = F.create_map(*[x for s, e in epochs.items() for x in (F.lit(s), F.lit(math.floor(e)))])
    budget = F.create_map(
        *[x for s, e in epochs.items() for x in (F.lit(s), F.lit((e % 1) * natural[s][1]))]
    )
    order = F.sha2(F.concat(F.lit(f"{config.mix_seed}:"), F.col("id")), 256)
    before = F.sum("n_tokens").over(
        Window.partitionBy("source", "_split")
        .orderBy(order, "id")
        .rowsBetween(Window.unboundedPreceding, -1)
    )
    extra = (F.coalesce(before, F.lit(0)) < budget[F.col("source")]).cast("int")
    copies = F.when(train, whole[F.col("source")] + extra).otherwise(F.lit(1))
    planned = counted.withColumn("_copies", copies).where(F.col("_copies") > 0)
    repeated = planned.withColumn("_copy", F.explode(F.sequence(F.lit(0), F.col("_copies") - 1)))
    after = (
        repeated.where(train)
        .groupBy("source")
        .agg(F.count("*").alias("docs"), F.sum("n_tokens").alias("tokens"))
    )
    written = {r["source"]: (r["docs"], r["tokens"]) for r in after.collect()}
    total = sum(t for _, t in written.values())
    weights = sum(config.mix[s] for s in natural)
    record = {
        "seed": config.mix_seed,
        "split": "train",
        "sources": {
            s: {
                "weight": config.mix[s],
                "target_share": config.mix[s] / weights,
                "share": written.get(s, (0, 0))[1] / total if total else 0.0,
                "epochs": epochs[s],
                "docs_natural": natural[s][0],
                "tokens_natural": natural[s][1],
                "docs": written.get(s, (0, 0))[0],
                "tokens": written.get(s, (0, 0))[1],
            }
            for s in sorted(natural)
        },
    }
    return repeated.drop("n_tokens", "_copies"), record
