"""Paragraph dedup on real crawls: what it removes from the embedded pydoc crawl and from the
shared corpus's WARC records (shared/corpus/warc: a Common Crawl capture and two wget crawls).

Each corpus goes through the real crawl and extract code (the pydoc site as `configs/demo.toml`
crawls it; the WARC and WET files through the WARC reader), then through the paragraph dedup
stage alone with its default settings (`curate.paragraph_dedup`), on the extracted documents,
and again with `min_documents` 2.
Per corpus: documents, units seen and removed, bytes removed, documents changed and dropped, the
stage's seconds, and the most repeated removed units (counted again here in plain Python from
the same split and keys, which also checks the Spark count). Prints a table and writes
bench/results/paragraphs.json. Run: `.venv/bin/python bench/paragraphs.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ holds tokenize.py, which would shadow the standard library's tokenize module.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import dataclasses  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import CORPUS  # noqa: E402
from tasks.common.spark import spark_session  # noqa: E402
from tasks.config import CrawlConfig, ExtractConfig, SparkConfig  # noqa: E402
from tasks.crawl.crawler import crawl  # noqa: E402
from tasks.crawl.other_sources import ingest_other_sources  # noqa: E402
from tasks.curate.exact_dedup import normalised_text_hash  # noqa: E402
from tasks.curate.paragraph_dedup import paragraph_dedup  # noqa: E402
from tasks.curate.paragraphs import ParagraphDedupConfig, split_units, unit_key  # noqa: E402
from tasks.extract.extract import extract_documents  # noqa: E402

EXAMPLES = 8
THRESHOLDS = (3, 2)  # the default min_documents, and the loosest allowed


def crawled(spark, name: str, folder: Path) -> str:
    """Crawl and extract corpus `name` under `folder`; the extracted docs/ folder."""
    if name == "pydoc":  # as configs/demo.toml crawls it
        config = CrawlConfig(site_modules=300, max_pages=400, max_depth=2)
        crawl(spark, config, folder / "crawl")
    else:
        warc = CORPUS / "warc"
        config = CrawlConfig(warc_paths=[str(warc / "*.warc.gz"), str(warc / "*.wet.gz")])
        ingest_other_sources(spark, config, folder / "crawl")
    extract_documents(spark, folder / "crawl", ExtractConfig(), folder / "extract")
    return str(folder / "extract" / "docs")


def repeated_units(
    rows: list[tuple[str, str]], config: ParagraphDedupConfig
) -> tuple[Counter, dict[int, str]]:
    """{key: documents holding it} (documents counted by normalised text) and one text per key."""
    holders: dict[int, set[str]] = {}
    texts: dict[int, str] = {}
    for doc, text in rows:
        for unit in split_units(text, config.unit)[0]:
            key = unit_key(unit, config)
            if key is not None:
                holders.setdefault(key, set()).add(doc)
                texts.setdefault(key, " ".join(unit.split()))
    return Counter({k: len(v) for k, v in holders.items()}), texts


def measure(spark, docs_uri: str, config: ParagraphDedupConfig) -> dict:
    docs = spark.read.parquet(docs_uri).cache()
    n_docs = docs.count()
    started = time.perf_counter()
    rewritten, drops, stats = paragraph_dedup(docs, config)
    dropped = [r["id"] for r in drops.collect()]
    seconds = time.perf_counter() - started
    urls = dict(docs.select("id", "url").rdd.map(tuple).collect())
    rows = [
        (r["doc"], r["text"] or "")
        for r in docs.select(normalised_text_hash(docs.text).alias("doc"), "text").collect()
    ]
    bytes_in = sum(len(text.encode("utf-8")) for _, text in rows)
    counts, texts = repeated_units(rows, config)
    boiler = {k for k, n in counts.items() if n >= config.min_documents}
    occurrences = Counter()
    for _, text in rows:
        for unit in split_units(text, config.unit)[0]:
            key = unit_key(unit, config)
            if key in boiler:
                occurrences[key] += 1
    docs.unpersist()
    return {
        "documents": n_docs,
        **stats,
        "bytes_in": bytes_in,
        "bytes_removed_pct": 100 * stats["paragraph_bytes_removed"] / max(bytes_in, 1),
        "documents_dropped": len(dropped),
        "dropped_urls": sorted(urls[i] for i in dropped)[:EXAMPLES],
        "seconds": seconds,
        "python_count_agrees": sum(occurrences.values()) == stats["paragraphs_removed"],
        "distinct_removed": len(boiler),
        "most_repeated": [
            {"documents": counts[k], "text": texts[k][:80]}
            for k, _ in sorted(((k, counts[k]) for k in boiler), key=lambda kv: -kv[1])[:EXAMPLES]
        ],
    }


def main() -> None:
    config = ParagraphDedupConfig()
    spark = spark_session(SparkConfig(master="local[2]", shuffle_partitions=4))
    results = {}
    with tempfile.TemporaryDirectory(prefix="lmforge-bench-paragraphs-") as tmp:
        for name in ("pydoc", "warc"):
            docs_uri = crawled(spark, name, Path(tmp) / name)
            for n in THRESHOLDS:
                tried = dataclasses.replace(config, min_documents=n)
                results[f"{name} n={n}"] = measure(spark, docs_uri, tried)
    header = f"{'corpus':11} {'docs':>5} {'units':>6} {'removed':>8} {'bytes %':>8}"
    print(header + f" {'changed':>8} {'dropped':>8} {'seconds':>8}")
    for name, r in results.items():
        print(
            f"{name:11} {r['documents']:5d} {r['paragraphs_seen']:6d} "
            f"{r['paragraphs_removed']:8d} {r['bytes_removed_pct']:8.1f} "
            f"{r['paragraph_documents_changed']:8d} {r['documents_dropped']:8d} "
            f"{r['seconds']:8.1f}"
        )
    for name, r in results.items():
        print(f"\n{name}: most repeated removed units (documents, text)")
        for example in r["most_repeated"]:
            print(f"  {example['documents']:4d}  {example['text']!r}")
        print(f"  dropped: {r['dropped_urls']}")
    out = ROOT / "bench" / "results" / "paragraphs.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"config": vars(config), "corpora": results, "cores": 2}
    out.write_text(json.dumps(payload, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
