"""Near-duplicate detection speed, whole processes: `python -m tasks.curate.near_dedup` against
text-dedup's Spark MinHash (`../shared/peers/text-dedup/minhash_spark.py`, skipped when absent),
same Parquet, local[2], 14x8 bands over word 5-grams, Spark start included; wall time, peak
RSS of the driver (python + JVM) and of the Python workers, recall/precision on the planted
truth. Writes bench/results/dedup_processes.json. `--in-process`: the Spark path against
datasketch (MinHash.bulk + MinHashLSH) in one process (bench/results/dedup.json).

Documents: passages of the shared corpus's books and the extraction gold bodies plus edited
copies (`corpus`). Run by hand: `.venv/bin/python bench/dedup.py [n ...] [--rounds R]`.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ holds tokenize.py, which would shadow the standard library's tokenize module.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from functools import partial  # noqa: E402

import psutil  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
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
# the peer, run as a process only (never imported); the comparison is skipped without it
PEER = ROOT.parent / "shared" / "peers" / "text-dedup" / "minhash_spark.py"


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


def in_process(sizes: tuple[int, ...], rounds: int = 2) -> None:
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


NICE = ["nice", "-n", "10"]  # the machine is shared: the big runs yield to the others'


@dataclass
class Tool:
    """One whole-process run: wall seconds, peak RSS by role, the ids it dropped."""

    seconds: float
    driver_peak: int  # the launched python process + the driver JVM, bytes
    workers_peak: int  # Spark's python workers (every other descendant), bytes
    dropped: set[str]


def write_planted_parquet(n_docs: int, folder: Path, chunk: int = 50_000) -> dict[str, float]:
    """corpus(n_docs) as Parquet files of (id, text) in `folder`, written in chunks (1M docs
    do not fit in one Python list here); returns each copy's true Jaccard with its source."""
    texts = book_passages(CORPUS / "books")
    gold = json.loads((CORPUS / "extraction" / "ground-truth.json").read_text())
    texts += [v["articleBody"] for v in gold.values() if len(v["articleBody"].split()) > 50]
    shingles = [set(shingle_hashes(t, 5).tolist()) for t in texts]
    rng, truth = random.Random(0), {}
    folder.mkdir(parents=True)
    rows = [(f"a{i:06d}", t) for i, t in enumerate(texts)]
    count, part = len(rows), 0
    while part == 0 or count < n_docs:
        while len(rows) < chunk and count < n_docs:
            k = rng.randrange(len(texts))
            copy = edited_copy(texts[k], rng.choice(FRACTIONS), rng)
            mine = set(shingle_hashes(copy, 5).tolist())
            doc_id = f"b{count:07d}"
            truth[doc_id] = len(mine & shingles[k]) / max(len(mine | shingles[k]), 1)
            rows.append((doc_id, copy))
            count += 1
        ids, bodies = zip(*rows, strict=True)
        table = pa.table({"id": list(ids), "text": list(bodies)})
        pq.write_table(table, folder / f"part-{part:04d}.parquet")
        rows, part = [], part + 1
    return truth


def run_tool(
    command: list[str], env: dict[str, str], interval: float = 0.2
) -> tuple[float, int, int]:
    """Run `command` to its end; (seconds, driver peak RSS, workers peak RSS)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root = psutil.Process(process.pid)
    driver_peak = workers_peak = 0
    while process.poll() is None:
        driver = workers = 0
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            break
        for proc in procs:
            try:
                rss = proc.memory_info().rss
                is_driver = proc.pid == root.pid or proc.name().startswith("java")
            except psutil.Error:
                continue
            driver, workers = (driver + rss, workers) if is_driver else (driver, workers + rss)
        driver_peak, workers_peak = max(driver_peak, driver), max(workers_peak, workers)
        time.sleep(interval)
    errors = process.stderr.read().decode(errors="replace")
    if process.wait() != 0:
        raise RuntimeError(f"{command[:4]} failed; its stderr ends:\n{errors[-3000:]}")
    return time.perf_counter() - started, driver_peak, workers_peak


def ours(input_dir: Path, work: Path) -> Tool:
    """`python -m tasks.curate.near_dedup` on local[2], as a new user would run it."""
    out = work / f"ours-{time.monotonic_ns()}"
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    command = [*NICE, sys.executable, "-m", "tasks.curate.near_dedup", "--input", str(input_dir)]
    seconds, driver, workers = run_tool(
        [*command, "--output", str(out), "--master", "local[2]"], env
    )
    dropped = set(pq.read_table(out / "dropped", columns=["id"]).column("id").to_pylist())
    shutil.rmtree(out)
    return Tool(seconds, driver, workers, dropped)


def text_dedup(input_dir: Path, work: Path, all_ids: set[str]) -> Tool:
    """The peer's minhash_spark.py, 14x8 bands over word 5-grams, local[2]."""
    out = work / f"peer-{time.monotonic_ns()}"
    env = os.environ | {
        "PYSPARK_SUBMIT_ARGS": "--master local[2] --driver-memory 4g pyspark-shell",
        "PYSPARK_PYTHON": sys.executable,
    }
    command = [*NICE, sys.executable, str(PEER), "--input", str(input_dir), "--output", str(out)]
    command += ["--column", "text", "--index_column", "id", "--b", "14", "--r", "8"]
    command += ["--num_perm", "112", "--ngram_size", "5", "--min_length", "0"]
    seconds, driver, workers = run_tool(command, env)
    parts = sorted(out.glob("__pid__=*/*.parquet"))  # hive-partitioned by __pid__
    kept = {i for part in parts for i in pq.read_table(part, columns=["id"])["id"].to_pylist()}
    shutil.rmtree(out)
    return Tool(seconds, driver, workers, all_ids - kept)


def scores(dropped: set[str], truth: dict[str, float]) -> tuple[float, float]:
    """(recall of copies with J >= 0.85, precision: dropped that are copies with J >= 0.5)."""
    high = [d for d, j in truth.items() if j >= 0.85]
    recall = sum(d in dropped for d in high) / max(len(high), 1)
    precision = sum(truth.get(d, 0.0) >= 0.5 for d in dropped) / max(len(dropped), 1)
    return recall, precision


def main(sizes: tuple[int, ...], rounds: int, peer: bool) -> None:
    """Each size: both tools as whole processes, alternately, `rounds` times; best kept."""
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-dedup-") as tmp:
        for n_docs in sizes:
            work = Path(tmp) / str(n_docs)
            truth = write_planted_parquet(n_docs, work / "input")
            all_ids = set(pq.read_table(work / "input", columns=["id"]).column("id").to_pylist())
            paths = {"lmforge": partial(ours, work / "input", work)}
            if peer:
                paths["text-dedup"] = partial(text_dedup, work / "input", work, all_ids)
            runs: dict[str, list[Tool]] = {name: [] for name in paths}
            for r in range(rounds):
                for name, path in paths.items():
                    runs[name].append(path())
                times = ", ".join(f"{k} {v[-1].seconds:.1f} s" for k, v in runs.items())
                print(f"{n_docs:,} docs round {r + 1}: {times}", flush=True)
            for name, tool_runs in runs.items():
                recall, precision = scores(tool_runs[-1].dropped, truth)
                best = min(t.seconds for t in tool_runs)
                results.append(
                    {
                        "documents": n_docs,
                        "tool": name,
                        "seconds_each_round": [t.seconds for t in tool_runs],
                        "seconds": best,
                        "docs_per_s": n_docs / best,
                        "driver_peak_rss_bytes": max(t.driver_peak for t in tool_runs),
                        "workers_peak_rss_bytes": max(t.workers_peak for t in tool_runs),
                        "dropped": len(tool_runs[-1].dropped),
                        "recall_j085": recall,
                        "precision": precision,
                    }
                )
    head = f"{'docs':>9} {'tool':11} {'seconds':>8} {'docs/s':>7} {'driver MiB':>10}"
    print(f"{head} {'workers MiB':>11} {'dropped':>8} {'recall':>6} {'prec.':>6}")
    for r in results:
        print(
            f"{r['documents']:9,} {r['tool']:11} {r['seconds']:8.1f} {r['docs_per_s']:7.0f} "
            f"{r['driver_peak_rss_bytes'] / 2**20:10.0f} "
            f"{r['workers_peak_rss_bytes'] / 2**20:11.0f} "
            f"{r['dropped']:8d} {r['recall_j085']:6.3f} {r['precision']:6.3f}"
        )
    by = {(r["documents"], r["tool"]): r["seconds"] for r in results}
    for n_docs in sizes:
        if (n_docs, "text-dedup") in by:
            print(
                f"{n_docs:,}: lmforge "
                f"{by[n_docs, 'text-dedup'] / by[n_docs, 'lmforge']:.2f}x faster"
            )
    out = ROOT / "bench" / "results" / "dedup_processes.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rounds": rounds, "cores": 2, "results": results}, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sizes", nargs="*", type=int, default=[20_000, 100_000])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-peer", action="store_true", help="lmforge alone")
    parser.add_argument(
        "--in-process", action="store_true", help="Spark vs datasketch, one process"
    )
    args = parser.parse_args()
    if args.in_process:
        in_process(tuple(args.sizes), args.rounds)
    else:
        main(tuple(args.sizes), args.rounds, PEER.is_file() and not args.no_peer)
