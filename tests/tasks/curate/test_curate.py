"""The whole curate step on tiny inline documents: accounting, funnel, outputs, incremental."""

from __future__ import annotations

import json

import pytest

from tasks.common.step import run_step
from tasks.config import CurateConfig
from tasks.crawl.records import DOCUMENT_SCHEMA
from tasks.curate.curate import curate_documents

PARA = (
    "The river ran past the old mill and the children of the village went there to play. "
    "They built small boats of bark and sent them down to the sea with messages for sailors. "
)


def story(i: int) -> str:
    """A text sharing no word 5-gram with story(j), j != i: every word carries the number."""
    return " ".join(f"{word}{i}" for word in PARA.split()) + "."


def _docs(spark, path, texts):
    rows = [
        {
            "id": f"d{i:02d}",
            "url": f"http://example.org/{i}",
            "source": "web",
            "title": "t",
            "text": t,
            "lang": "en",
            "lang_score": 1.0,
            "fetched_at": "2026-01-01",
            "meta": {},
        }
        for i, t in enumerate(texts)
    ]
    spark.createDataFrame(rows, DOCUMENT_SCHEMA).write.parquet(str(path))
    return str(path)


@pytest.fixture(scope="module")
def curated(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("curate")
    texts = [
        "too short",
        story(1),
        story(1).upper(),  # exact duplicate after normalisation
        story(2),
        story(2).replace("boats2", "ships2"),  # near duplicate
        story(3) + " Write to ann@example.org or call +44 20 7946 0018.",
        "http://spam.example/a http://spam.example/bbbbbbbbbbbbbbbbbb\n" * 5 + story(4),
        story(5) + " Some fuck words here.",
    ]
    config = CurateConfig(filters=["length", "links", "toxicity", "pii"])
    docs_uri = _docs(spark, root / "in", texts)
    result = run_step(
        root,
        "curate",
        {"t": 1},
        [],
        ["tasks/curate"],
        lambda out: curate_documents(spark, docs_uri, config, out),
    )
    return spark, result, config


def test_every_document_is_kept_or_dropped_with_its_reason(curated):
    spark, result, _ = curated
    stats = result.stats
    dropped = {
        r["id"]: r["drop_reason"] for r in spark.read.parquet(f"{result.path}/dropped").collect()
    }
    kept = spark.read.parquet(f"{result.path}/docs")
    assert dropped == {
        "d00": "too_short",
        "d02": "exact_duplicate",
        "d04": "near_duplicate",
        "d07": "badwords",
    }
    assert kept.count() + len(dropped) == stats["input"] == 8
    assert stats["kept"] + sum(v for k, v in stats.items() if k.startswith("dropped_")) == 8
    # no bookkeeping columns leak into the records
    assert [(f.name, f.dataType) for f in kept.schema] == [
        (f.name, f.dataType) for f in DOCUMENT_SCHEMA
    ]


def test_funnel_and_counters_in_stats(curated):
    _, result, _ = curated
    stats = json.loads((__import__("pathlib").Path(result.path) / "stats.json").read_text())
    assert stats["funnel"] == {
        "input": 8,
        "after_length": 7,
        "after_links": 7,
        "after_toxicity": 6,
        "after_pii": 6,
        "after_paragraph_dedup": 6,
        "after_exact_dedup": 5,
        "after_near_dedup": 4,
        "after_decontaminate": 4,  # no evaluation set given: nothing to check against
        "kept": 4,
    }
    assert stats["pii_email"] == 1 and stats["pii_phone"] == 1
    assert stats["url_lines_removed"] == 5


def test_texts_are_rewritten_by_the_filters(curated):
    spark, result, _ = curated
    texts = {r["id"]: r["text"] for r in spark.read.parquet(f"{result.path}/docs").collect()}
    assert "<EMAIL>" in texts["d05"] and "ann@example.org" not in texts["d05"]
    assert texts["d06"] == story(4)


def test_later_crawl_drops_near_copies_of_earlier_kept_documents(curated, tmp_path):
    spark, first, config = curated
    docs_uri = _docs(spark, tmp_path / "in", [story(1) + " and more1", story(9)])
    later = CurateConfig(filters=["length"], previous_output=first.path)
    stats = curate_documents(spark, docs_uri, later, tmp_path / "out")
    assert stats["dropped_near_duplicate_previous"] == 1 and stats["kept"] == 1
    index = spark.read.parquet(str(tmp_path / "out" / "minhash_index"))
    assert index.count() == first.stats["kept"] + 1  # everything kept so far
