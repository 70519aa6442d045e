"""The train/validation split rule, in one place.

A document is 'val' when the first `HEX_DIGITS` hex digits of the sha256 of its id (UTF-8),
read as an integer, modulo `BUCKETS` fall below `val_threshold(val_fraction)`; else 'train'. The
rule has two forms built here from the same constants: `split_column`, the Spark SQL form the
tokenize step evaluates (in the JVM, before its sort: a Python UDF would send every id through
a Python worker once more before the shuffle, just for a key the JVM computes natively), and
`split_of`, the same rule in Python for checking shards; `split_rule` is what the
manifest records. tests/tasks/tokenize/test_split.py checks that both forms agree.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pyspark.sql import Column
from pyspark.sql import functions as F

SPLITS = ("train", "val")
BUCKETS = 10_000
HEX_DIGITS = 8  # of the sha256 hex digest, from the first; 32 bits, a Spark long never overflows
RULE = (
    f"val if int(sha256(id.encode('utf-8')).hexdigest()[:{HEX_DIGITS}], 16) % {BUCKETS} "
    "< {threshold}, else train"
)


def val_threshold(val_fraction: float) -> int:
    """The number of the `BUCKETS` buckets that go to 'val'."""
    return round(val_fraction * BUCKETS)


def split_of(doc_id: str, threshold: int) -> str:
    """'val' or 'train' for the document `doc_id` (the Python form of the rule)."""
    digest = hashlib.sha256(doc_id.encode("utf-8")).hexdigest()
    return "val" if int(digest[:HEX_DIGITS], 16) % BUCKETS < threshold else "train"


def hex_int(hex_column: Column, start: int, digits: int = 8) -> Column:
    """int(hex[start-1 : start-1+digits], 16) as a Spark long (SQL substrings count from 1)."""
    return F.conv(F.substring(hex_column, start, digits), 16, 10).cast("long")


def split_column(digest: Column, threshold: int) -> Column:
    """'val' or 'train' from `digest`, the column `F.sha2(id, 256)` (the Spark form of the rule;
    'train' where the id is null)."""
    return F.when(hex_int(digest, 1, HEX_DIGITS) % BUCKETS < threshold, "val").otherwise("train")


def split_rule(val_fraction: float) -> dict[str, Any]:
    """The rule as the manifest records it (`split_rule`)."""
    threshold = val_threshold(val_fraction)
    return {
        "rule": RULE.format(threshold=threshold),
        "val_fraction": val_fraction,
        "val_threshold": threshold,
        "buckets": BUCKETS,
    }
