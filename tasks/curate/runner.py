"""The shared filter runner: applies filters in order on Spark executors, first drop wins.

Filters see each document's `url`, `text`, `lang` and `lang_score` (the extract step's
language id and its probability). A social message (`source = "social"`) meets only the
filters named in `curate.social.filters`. Each
document leaves with its (possibly rewritten) text, `drop_reason` and `drop_stage` (the
dropping filter's name; both null when kept) and one integer column per counter the filters
declare. `funnel` turns the stages into the step's accounting: documents left after each one.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType

from tasks.curate.filters.base import DocumentFilter
from tasks.curate.social_rules import SOURCE as SOCIAL_SOURCE

COUNT_PREFIX = "n_"


def counter_names(filters: Sequence[DocumentFilter]) -> list[str]:
    """Every counter the filters declare, in filter order."""
    return [c for f in filters for c in f.counters]


def filter_document(
    filters: Sequence[DocumentFilter], doc: dict[str, Any]
) -> tuple[str, str] | None:
    """Run `filters` on `doc` (rewriting its text in place); (stage, reason) of the first drop."""
    for rule in filters:
        verdict = rule.filter(doc)
        keep, reason = (verdict, rule.name) if isinstance(verdict, bool) else verdict
        if not keep:
            return rule.name, reason
    return None


def apply_filters(
    docs: DataFrame,
    filters: Sequence[DocumentFilter],
    social_filters: Collection[str] | None = None,
) -> DataFrame:
    """`docs` plus `drop_reason`, `drop_stage` and `n_<counter>` columns (a pandas UDF);
    social messages meet only the filters named in `social_filters` (None: all of them)."""
    counters = counter_names(filters)
    for_messages = [f for f in filters if social_filters is None or f.name in social_filters]
    schema = StructType(
        docs.schema.fields
        + [StructField("drop_reason", StringType(), True)]
        + [StructField("drop_stage", StringType(), True)]
        + [StructField(COUNT_PREFIX + c, LongType(), False) for c in counters]
    )

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            texts, drops = [], []
            counts: dict[str, list[int]] = {c: [] for c in counters}
            none = [None] * len(batch)
            langs = batch["lang"] if "lang" in batch else none
            scores = batch["lang_score"] if "lang_score" in batch else none
            sources = batch["source"] if "source" in batch else none
            for url, text, lang, score, source in zip(
                batch["url"], batch["text"], langs, scores, sources, strict=True
            ):
                score = None if score is None or score != score else float(score)  # NaN: none
                doc = {"url": url, "text": text or "", "lang": lang, "lang_score": score}
                doc["counts"] = {}
                rules = for_messages if source == SOCIAL_SOURCE else filters
                drops.append(filter_document(rules, doc) or (None, None))
                texts.append(doc["text"])
                for c in counters:
                    counts[c].append(doc["counts"].get(c, 0))
            stages, reasons = zip(*drops, strict=True) if drops else ((), ())
            out = batch.assign(text=texts, drop_reason=list(reasons), drop_stage=list(stages))
            yield out.assign(**{COUNT_PREFIX + c: v for c, v in counts.items()})

    return docs.mapInPandas(run, schema)


def drop_counts(marked: DataFrame, column: str) -> dict[str, int]:
    """`{value: documents}` of `column` (drop_reason or drop_stage) over the dropped rows."""
    rows = marked.filter(F.col(column).isNotNull()).groupBy(column).count().collect()
    return {r[column]: int(r["count"]) for r in rows}


def funnel(n_input: int, stages: Sequence[str], dropped_by_stage: dict[str, int]) -> dict[str, int]:
    """Documents left after each stage, in order: `{"input": n, "after_<stage>": ...}`."""
    left = n_input
    out = {"input": n_input}
    for stage in stages:
        left -= dropped_by_stage.get(stage, 0)
        out[f"after_{stage}"] = left
    return out
