"""Near-duplicate detection speed: the Spark path (signatures + banding + components) against
the fastest single-process datasketch path (MinHash.bulk, then MinHashLSH), same documents.

Documents: passages of the shared corpus's books and the extraction gold bodies plus edited
copies, 20,000 and 100,000 in all. Prints a table and writes bench/results/dedup.json.
Run by hand: `.venv/bin/python bench/dedup.py [n ...]`.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ holds tokenize.py, which would shadow the standard library's tokenize module.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import json  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
from functools import partial  # noqa: E402

from datasketch import MinHash, MinHashLSH  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "tasks" / "curate")]

from planted import book_passages, edited_copy  # noqa: E402

from bench._common import CORPUS, alternate  # noqa: E402
from tasks.common.spark import spark_session  # noqa: E402
from tasks.config import CurateConfig, SparkConfig  # noqa: E402
from tasks.curate.minhash import shingle_hashes  # noqa: E402
from tasks.curate.near_dedup import near_duplicates  # noqa: E402

FRACTIONS = [0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.3]


def corpus(n_docs: int) -> list[tuple[str, str]]:
    """Book passages and extraction gold bodies, then edited copies up to `n_docs`."""
    texts = book_passages(CORPUS / "books")
    gold = json.loads((CORPUS / "extraction" / "ground-truth.json").read_text())
    texts += [v["articleBody"] for v in gold.values() if len(v["articleBody"].split()) > 50]
    rng = random.Random(0)
    docs = [(f"a{i:06d}", t) for i, t in enumerate(texts)]
    while len(docs) < n_docs:
        source = rng.choice(texts)
        docs.append((f"b{len(docs):06d}", edited_copy(source, rng.choice(FRACTIONS), rng)))
    return docs


def datasketch_path(docs: list[tuple[str, str]], config: CurateConfig) -> set[str]:
    """MinHash.bulk + MinHashLSH (same bands x rows), union-find; the ids it would drop.

    datasketch gets the same 32-bit shingle hashes as the Spark path (`hashfunc=int`, its
    fastest input), so both compute identical signatures and must find the same duplicates.
    """
    num_perm = config.minhash_bands * config.minhash_rows
    sets = [shingle_hashes(t, config.minhash_ngram).tolist() for _, t in docs]
    hashes = MinHash.bulk(sets, num_perm=num_perm, seed=config.minhash_seed, hashfunc=int)
    lsh = MinHashLSH(num_perm=num_perm, params=(config.minhash_bands, config.minhash_rows))
    parent = {doc_id: doc_id for doc_id, _ in docs}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for (doc_id, _), h in zip(docs, hashes, strict=True):
        for other in lsh.query(h):
            a, b = root(doc_id), root(other)
            parent[max(a, b)] = min(a, b)
        lsh.insert(doc_id, h)
    return {doc_id for doc_id, _ in docs if root(doc_id) != doc_id}


def spark_path(frame, config: CurateConfig) -> set[str]:
    dropped, _ = near_duplicates(frame, None, config)
    return {r["id"] for r in dropped.collect()}


def main(sizes: tuple[int, ...] = (20_000, 100_000), rounds: int = 2) -> None:
    """Each size: the two paths timed alternately `rounds` times, each path's best round kept
    (this shared VM's speed drifts by +-15% over minutes). The Spark rounds follow a first,
    cold run on the first size in the same session (Python workers started, JVM code
    compiled), as the step runs inside a pipeline's session; that cold run is reported too.
    datasketch's peak memory is this process's alone (the Spark session's JVM and workers,
    idle while it runs, are left out); Spark's includes the JVM and the Python workers."""
    config = CurateConfig(min_estimated_jaccard=0.0)  # plain LSH, like the baseline
    spark = spark_session(SparkConfig(master="local[2]", shuffle_partitions=4))
    results, rows = [], []
    for n_docs in sizes:
        docs = corpus(n_docs)
        frame = spark.createDataFrame(docs, "id string, text string").repartition(4).cache()
        frame.count()
        if not results:
            t0 = time.perf_counter()
            spark_path(frame, config)
            cold_s = time.perf_counter() - t0
        runs = alternate(
            rounds,
            {
                "datasketch": partial(datasketch_path, docs, config),
                "spark": partial(spark_path, frame, config),
            },
            children={"datasketch": False},  # not the idle Spark JVM
        )
        base_times = [run.seconds for run in runs["datasketch"]]
        spark_times = [run.seconds for run in runs["spark"]]
        base_peak = max(run.peak_rss for run in runs["datasketch"])
        spark_peak = max(run.peak_rss for run in runs["spark"])
        baseline, found = runs["datasketch"][-1].result, runs["spark"][-1].result
        frame.unpersist()
        base_s, spark_s = min(base_times), min(spark_times)
        same = baseline == found
        rows += [
            (n_docs, "datasketch bulk + MinHashLSH", base_s, base_peak, len(baseline)),
            (n_docs, "spark local[2]", spark_s, spark_peak, len(found)),
        ]
        results.append(
            {
                "documents": n_docs,
                "datasketch_s_each_round": base_times,
                "spark_s_each_round": spark_times,
                "datasketch_s": base_s,
                "spark_s": spark_s,
                "datasketch_docs_per_s": n_docs / base_s,
                "spark_docs_per_s": n_docs / spark_s,
                "datasketch_peak_rss_bytes": base_peak,
                "spark_peak_rss_bytes": spark_peak,
                "speedup": base_s / spark_s,
                "dropped": len(found),
                "same_duplicates": same,
                "only_baseline": len(baseline - found),
                "only_spark": len(found - baseline),
            }
        )
    print(f"{'docs':>7} {'path':30} {'docs/s':>9} {'seconds':>8} {'peak MiB':>9} {'dropped':>8}")
    for n_docs, name, secs, peak, n in rows:
        print(f"{n_docs:7d} {name:30} {n_docs / secs:9.0f} {secs:8.1f} {peak / 2**20:9.0f} {n:8d}")
    for r in results:
        print(
            f"{r['documents']:,} documents: speed-up {r['speedup']:.2f}x (best of {rounds}); "
            f"same duplicates: {r['same_duplicates']} (only baseline {r['only_baseline']}, "
            f"only spark {r['only_spark']})"
        )
    print(f"(first, cold Spark run on {sizes[0]:,} documents: {cold_s:.1f} s)")
    out = ROOT / "bench" / "results" / "dedup.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"sizes": results, "rounds": rounds, "cold_first_run_s": cold_s, "cores": 2}
    out.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main(tuple(int(a) for a in sys.argv[1:]) or (20_000, 100_000))
