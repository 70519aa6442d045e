"""Message-level cleaning of social-media messages (`source = "social"`), a Spark stage; its
settings and link rules are in `tasks/curate/social_rules.py`.

It runs after the filters and before paragraph dedup, on the social records only (the others
pass untouched), in this order:
1. links: a message whose non-space characters are more than `max_link_share` URLs is
   dropped (`social_mostly_link`); then `links = "strip"` removes every URL (a Markdown
   `[text](url)` keeps its text), `"drop"` drops a message that carries one
   (`social_has_link`), `"keep"` leaves them; a message left without a word is mostly link;
2. bot repeats: one author (`meta.author_hash`) posting the same text, numbers and links aside
   ("temp 21C at 10:00" = "temp 23C at 11:00"), `bot_min_repeats` times or more: the earliest
   is kept, the rest dropped (`social_bot_repeat`). Messages only: a thread document
   (`crawl.social_assemble = "thread"`) has no single author;
3. exact duplicates (exact dedup's normalised text, or for a message of emoji only its own
   text: reposts, copy-paste): the earliest is kept, the others are `social_duplicate`;
4. near duplicates: MinHash LSH over character n-grams (`char_ngram`) of the normalised text:
   a short message with a few words changed shares no word 5-gram with its original. Pairs are
   verified by estimated Jaccard, merged into components, and all but the earliest member are
   `social_near_duplicate`.
"Earliest" is the smallest (`meta.created_at`, id); an undated message sorts after dated ones,
so the survivor does not depend on Spark's partitioning. Dropped messages keep their text as
the stage saw it (after link stripping, except for the link rules' own drops).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import pandas as pd
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType

from tasks.curate.components import candidate_pairs, components, lsh_buckets
from tasks.curate.exact_dedup import normalised_text_hash
from tasks.curate.filters.links import URL
from tasks.curate.minhash import minhash_table, similar_pairs
from tasks.curate.social_rules import SOURCE, SocialConfig, link_verdict

STAGE = "social"
_URL_SQL = "(?i)" + URL.pattern  # Java's regex reads the same pattern
UNDATED = "~"  # sorts after every ISO 8601 date


def _link_rules(messages: DataFrame, config: SocialConfig) -> DataFrame:
    """`messages` with the link rules applied: text rewritten, `drop_reason`, `_urls`."""
    schema = StructType(
        messages.schema.fields
        + [StructField("drop_reason", StringType(), True), StructField("_urls", LongType(), False)]
    )

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            verdicts = [link_verdict(text or "", config) for text in batch["text"]]
            texts, reasons, urls = zip(*verdicts, strict=True) if verdicts else ((), (), ())
            yield batch.assign(text=list(texts), drop_reason=list(reasons), _urls=list(urls))

    return messages.mapInPandas(run, schema)


def _earliest_first() -> list[Column]:
    return [F.coalesce(F.col("meta")["created_at"], F.lit(UNDATED)), F.col("id")]


def message_key(text: Column) -> Column:
    """Exact dedup's normalised-text hash; a message without a letter or digit (emoji only,
    which normalises to nothing) is keyed by its own stripped text instead."""
    has_word = text.rlike(r"[\p{L}\p{N}]")
    return F.when(has_word, normalised_text_hash(text)).otherwise(F.sha2(F.trim(text), 256))


def bot_repeats(messages: DataFrame, min_repeats: int) -> DataFrame:
    """(id, drop_reason) of every message but the earliest of an author's repeated text
    (numbers and links aside), when the author posted it `min_repeats` times or more."""
    author = F.col("meta")["author_hash"]
    key = message_key(F.regexp_replace(F.regexp_replace("text", _URL_SQL, " "), r"\d+", "0"))
    group = Window.partitionBy("_author", "_key")
    keyed = messages.filter(author.isNotNull() & F.col("meta")["message_id"].isNotNull()).select(
        "id", "meta", author.alias("_author"), key.alias("_key")
    )
    ranked = keyed.select(
        "id",
        F.row_number().over(group.orderBy(*_earliest_first())).alias("_rank"),
        F.count("*").over(group).alias("_times"),
    )
    repeats = ranked.filter((F.col("_rank") > 1) & (F.col("_times") >= min_repeats))
    return repeats.select("id", F.lit("social_bot_repeat").alias("drop_reason"))


def exact_copies(messages: DataFrame) -> DataFrame:
    """(id, drop_reason) of every message but the earliest of each normalised text."""
    rank = F.row_number().over(Window.partitionBy("_hash").orderBy(*_earliest_first()))
    hashed = messages.select("id", "meta", message_key(F.col("text")).alias("_hash"))
    copies = hashed.withColumn("_rank", rank).filter(F.col("_rank") > 1)
    return copies.select("id", F.lit("social_duplicate").alias("drop_reason"))


def near_copies(
    messages: DataFrame, config: SocialConfig, max_iterations: int, max_bucket: int
) -> DataFrame:
    """(id, drop_reason) of every message but the earliest of each near-duplicate component
    (character n-gram MinHash LSH, buckets capped at `max_bucket`, pairs verified by estimated
    Jaccard)."""
    when, doc_id = _earliest_first()
    nodes = messages.select(F.concat(when, F.lit("|"), doc_id).alias("id"), "text")
    table = minhash_table(nodes, config.char_ngram, config.bands, config.rows, config.seed, "char")
    table = table.withColumnRenamed("id", "node")
    index = table.select("node", F.posexplode("band_keys").alias("band", "key"))
    candidates = candidate_pairs(lsh_buckets(index, max_bucket))
    num_perm = config.bands * config.rows
    pairs = similar_pairs(candidates, table, num_perm, config.min_estimated_jaccard)
    clusters = components(pairs, max_iterations)
    copies = clusters.filter(F.col("node") != F.col("component"))
    return copies.select(
        F.substring_index("node", "|", -1).alias("id"),
        F.lit("social_near_duplicate").alias("drop_reason"),
    )


class SocialResult(NamedTuple):
    """The stage's documents (all of them, messages rewritten), its drops (id, drop_reason)
    and stats (`social_messages`, `social_messages_links_stripped`, `social_urls_stripped`)."""

    documents: DataFrame
    drops: DataFrame
    stats: dict[str, Any]


def has_messages(docs: DataFrame) -> bool:
    """Whether `docs` holds any `source = "social"` record."""
    return not docs.filter(F.col("source") == SOURCE).isEmpty()


def clean_messages(
    docs: DataFrame, config: SocialConfig, max_iterations: int, max_bucket: int
) -> SocialResult:
    """Apply the link, bot, exact and near-duplicate rules to the social messages of `docs`
    (LSH buckets capped at `max_bucket`); the drops are computed once (a local checkpoint)."""
    columns = docs.columns
    is_message = F.col("source") == SOURCE
    linked = _link_rules(docs.filter(is_message), config).localCheckpoint()
    left = linked.filter(F.col("drop_reason").isNull()).select(*columns)
    drops = [linked.filter(F.col("drop_reason").isNotNull()).select("id", "drop_reason")]
    if config.bot_min_repeats:
        drops.append(bot_repeats(left, config.bot_min_repeats).localCheckpoint())
        left = left.join(drops[-1], "id", "left_anti")
    drops.append(exact_copies(left).localCheckpoint())
    left = left.join(drops[-1], "id", "left_anti")
    drops.append(near_copies(left, config, max_iterations, max_bucket).localCheckpoint())
    totals = linked.agg(
        F.count("*").alias("messages"),
        F.count(F.when(F.col("_urls") > 0, True)).alias("changed"),
        F.sum("_urls").alias("urls"),
    ).first()
    stats = {
        "social_messages": int(totals["messages"]),
        "social_messages_links_stripped": int(totals["changed"]),
        "social_urls_stripped": int(totals["urls"] or 0),
    }
    documents = docs.filter(~is_message).unionByName(linked.select(*columns))
    all_drops = drops[0]
    for more in drops[1:]:
        all_drops = all_drops.unionByName(more)
    return SocialResult(documents, all_drops, stats)
