"""The curate step's last stage: train the quality classifier, score every document, drop the
low-scored ones.

Positives are the reference texts; negatives a seeded sample of the documents this stage is
given (the ones that survived the filters and dedup), taken as the smallest hashes of
(seed, id), so the same documents give the same sample however Spark partitions them, and
bounded by `curate.quality.max_negatives` because they are collected to the driver. The model
is trained on the driver and saved as `quality_model.bin` in the step's output; each Spark
task loads it once from there (`run.work_dir` is a path every node shares) and scores its
partition. The score goes into `meta["quality_score"]` (six decimals); the drop rule is
`curate.quality.threshold`, or the cutoff at `1 - keep_top_fraction` of the scores.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, StructField, StructType

from tasks.curate.quality_classifier import (
    QualityConfig,
    load_quality_model,
    quality_scores,
    read_reference,
    train_quality_model,
)

MODEL_FILE = "quality_model.bin"
SCORE_KEY = "quality_score"
SCORE_COLUMN = "_quality_score"
QUANTILE_ERROR = 1e-4  # approxQuantile's relative error for keep_top_fraction


@dataclass
class QualityResult:
    """What the stage gives curate: `docs` with `meta.quality_score` (and `_quality_score`,
    for the caller to leave out; persisted, the caller unpersists it), the `drops`
    (id, drop_reason) among them, and its stats."""

    docs: DataFrame
    drops: DataFrame
    stats: dict[str, Any]


def sample_negatives(docs: DataFrame, n: int, seed: int) -> list[str]:
    """The texts of the `n` documents with the smallest xxhash64(seed, id)."""
    order = F.xxhash64(F.lit(seed), F.col("id"))
    return [r["text"] for r in docs.orderBy(order, "id").limit(n).select("text").collect()]


def score_documents(docs: DataFrame, model_path: Path) -> DataFrame:
    """`docs` with meta.quality_score and a `_quality_score` double (the model loaded once per
    Spark task)."""
    path = str(model_path)
    schema = StructType(docs.schema.fields + [StructField(SCORE_COLUMN, DoubleType(), False)])

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = load_quality_model(path)
        for batch in batches:
            texts = [t or "" for t in batch["text"]]
            yield batch.assign(**{SCORE_COLUMN: quality_scores(model, texts)})

    scored = docs.mapInPandas(run, schema)
    kept_meta = F.map_filter(
        F.coalesce(F.col("meta"), F.create_map().cast("map<string,string>")),
        lambda key, _: key != SCORE_KEY,
    )
    score_entry = F.create_map(F.lit(SCORE_KEY), F.format_string("%.6f", F.col(SCORE_COLUMN)))
    return scored.withColumn("meta", F.map_concat(kept_meta, score_entry))


def quality_drops(docs: DataFrame, config: QualityConfig, out_dir: Path) -> QualityResult:
    """Train on the reference and a sample of `docs`, save the model in `out_dir`, score
    `docs` and mark those below the cutoff `low_quality`."""
    positives = read_reference(config.reference)
    wanted = min(config.max_negatives, math.ceil(config.negatives_ratio * len(positives)))
    negatives = sample_negatives(docs, wanted, config.seed)
    if not negatives:  # nothing reached this stage: nothing to learn from or to score
        empty = docs.withColumn(SCORE_COLUMN, F.lit(None).cast(DoubleType())).persist()
        return QualityResult(
            empty, empty.select("id", F.lit("low_quality").alias("drop_reason")), {}
        )
    model_path = Path(out_dir) / MODEL_FILE
    trained = train_quality_model(positives, negatives, config, model_path)
    scored = score_documents(docs, model_path).persist()
    cutoff = config.threshold
    if config.keep_top_fraction > 0:
        quantile = scored.approxQuantile(
            SCORE_COLUMN, [1 - config.keep_top_fraction], QUANTILE_ERROR
        )
        cutoff = quantile[0] if quantile else 0.0
    low = F.col(SCORE_COLUMN) < F.lit(cutoff)
    drops = scored.filter(low).select("id", F.lit("low_quality").alias("drop_reason"))
    stats = {
        "quality_model_sha256": trained["sha256"],
        "quality_train_positives": trained["positives"],
        "quality_train_negatives": trained["negatives"],
        "quality_cutoff": float(cutoff),
    }
    return QualityResult(scored, drops, stats)
