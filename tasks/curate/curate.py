"""The curate step: filters, social message cleaning (when the input holds social messages),
paragraph dedup, exact dedup, near dedup, decontamination, the quality classifier (when
`curate.quality.enabled`); every input document accounted for.

Writes `docs/` (kept records, the document schema unchanged), `dropped/` (rejects with
`drop_reason` and `drop_stage`), `minhash_index/` (for later crawls) and, with the classifier,
`quality_model.bin`, and returns stats: `input`, `kept`, `dropped_<reason>`, the counters the
filters keep (e.g. `pii_email`), the social stage's `social_*` counts, paragraph dedup's
counts (`paragraphs_seen`, `paragraphs_removed`, ...), `decontamination` (the evaluation sets
checked, with per-set contaminated documents), the classifier's `quality_*` and `funnel`
(documents left after each filter and each later stage).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from tasks.config import CurateConfig
from tasks.curate.decontaminate import build_index, decontaminate
from tasks.curate.eval_sets import EvalSetFile
from tasks.curate.exact_dedup import exact_duplicate_ids
from tasks.curate.filters.base import DocumentFilter
from tasks.curate.filters.build import build_filters
from tasks.curate.near_dedup import near_duplicates, read_previous_index, write_index
from tasks.curate.paragraph_dedup import STAGE as PARAGRAPH_DEDUP
from tasks.curate.paragraph_dedup import paragraph_dedup
from tasks.curate.quality import quality_drops
from tasks.curate.runner import COUNT_PREFIX, apply_filters, counter_names, drop_counts, funnel
from tasks.curate.social import STAGE as SOCIAL
from tasks.curate.social import clean_messages, has_messages
from tasks.curate.social_rules import SOURCE as SOCIAL_SOURCE


def _mark(docs: DataFrame, drops: DataFrame, stage: str) -> DataFrame:
    """`docs` with drop_reason/drop_stage from `drops` (id, drop_reason), null when kept."""
    joined = docs.join(drops, "id", "left")
    stage_col = F.when(F.col("drop_reason").isNotNull(), F.lit(stage))
    return joined.withColumn("drop_stage", stage_col.cast("string"))


def curate_documents(
    spark: SparkSession,
    docs_uri: str,
    config: CurateConfig,
    out_dir: Path,
    eval_sets: Sequence[EvalSetFile] = (),
) -> dict[str, Any]:
    """Curate the documents at `docs_uri` into `out_dir`, checked against `eval_sets` (when
    curate.decontaminate.enabled); return the step's stats."""
    docs = spark.read.parquet(docs_uri)
    n_input = docs.count()
    if n_input == 0:
        raise ValueError(
            f"curate: no documents in {docs_uri}; check the crawl and extract steps' stats.json"
        )
    columns = docs.columns
    filters: list[DocumentFilter] = build_filters(config)
    filtered = apply_filters(docs, filters, config.social.filters).persist()
    counters = counter_names(filters)
    passed = filtered.filter(F.col("drop_reason").isNull()).select(*columns).persist()
    # each later stage marks the documents it was given; the next one takes the unmarked
    stages, marked, cached = [f.name for f in filters], [filtered], [passed]
    stage_stats: dict[str, Any] = {}

    def survivors() -> DataFrame:
        return marked[-1].filter(F.col("drop_reason").isNull()).select(*columns)

    if config.social.enabled and has_messages(passed):
        cleaned = clean_messages(
            passed, config.social, config.components_max_iterations, config.minhash_max_bucket
        )
        marked.append(_mark(cleaned.documents, cleaned.drops, SOCIAL).persist())
        stages.append(SOCIAL)
        stage_stats.update(cleaned.stats)
    if config.paragraph_dedup.enabled:
        # boilerplate lines are a page's; a short message would be dropped for losing one
        current, is_message = survivors(), F.col("source") == SOCIAL_SOURCE
        pages = current.filter(~is_message)
        rewritten, short, paragraph_stats = paragraph_dedup(pages, config.paragraph_dedup)
        documents = rewritten.unionByName(current.filter(is_message))
        marked.append(_mark(documents, short, PARAGRAPH_DEDUP).persist())
        stages.append(PARAGRAPH_DEDUP)
        stage_stats.update(paragraph_stats)
    kept_so_far = survivors()
    marked.append(_mark(kept_so_far, exact_duplicate_ids(kept_so_far), "exact_dedup").persist())
    unique = survivors().persist()
    cached.append(unique)
    previous = read_previous_index(spark, config)
    near_ids, table = near_duplicates(unique, previous, config, stage_stats)
    cached.append(table)
    marked.append(_mark(unique, near_ids, "near_dedup").persist())
    stages += ["exact_dedup", "near_dedup"]
    settings = config.decontaminate
    index = build_index(eval_sets if settings.enabled else (), settings)
    decont = decontaminate(survivors(), index, settings)
    marked.append(_mark(decont.documents, decont.drops, "decontaminate").persist())
    stages.append("decontaminate")
    stage_stats["decontamination"] = {**decont.stats, "enabled": settings.enabled}
    marked_cols = [*columns, "drop_reason", "drop_stage"]
    try:
        if config.quality.enabled:
            quality = quality_drops(survivors(), config.quality, out_dir)
            cached.append(quality.docs)
            marked.append(_mark(quality.docs.select(*columns), quality.drops, "quality").persist())
            stages.append("quality")
            stage_stats.update(quality.stats)
        kept = survivors()
        dropped = functools.reduce(
            DataFrame.union,
            [m.filter(F.col("drop_reason").isNotNull()).select(*marked_cols) for m in marked],
        )
        kept.orderBy("id").write.mode("error").parquet(str(out_dir / "docs"))
        dropped.orderBy("id").write.mode("error").parquet(str(out_dir / "dropped"))
        write_index(table, kept.select("id"), previous, config, out_dir)
        sums = [F.sum(COUNT_PREFIX + c).alias(c) for c in counters]
        totals = filtered.agg(*sums).first().asDict() if counters else {}
    finally:
        for frame in (*marked, *cached):
            frame.unpersist()
        decont.unpersist()
        decont.unpersist()
    written = spark.read.parquet(str(out_dir / "dropped"))
    reasons = drop_counts(written, "drop_reason")
    n_kept = spark.read.parquet(str(out_dir / "docs")).count()
    stats: dict[str, Any] = {"input": n_input, "kept": n_kept}
    stats.update({f"dropped_{reason}": count for reason, count in sorted(reasons.items())})
    stats.update({c: int(totals[c] or 0) for c in counters})
    stats.update(stage_stats)
    for key in ("documents_contaminated", "ngrams_matched", "spans_redacted"):
        stats[f"decontaminate_{key}"] = decont.stats[key]  # numbers: curate.* metrics on the run
    stats["funnel"] = {
        **funnel(n_input, stages, drop_counts(written, "drop_stage")),
        "kept": n_kept,
    }
    # stats.json is written with sorted keys: the stages' pipeline order travels beside it
    stats["funnel_order"] = list(stats["funnel"])
    if n_kept + sum(reasons.values()) != n_input:
        raise RuntimeError(f"curate lost documents: {stats}")
    return stats
