"""Streaming WARC ingest at Common Crawl's file size: records/s and memory per worker.

Big WARCs are built in a temp folder (deleted after) from the real records of
shared/corpus/warc/*.warc.gz (a Common Crawl capture and two wget crawls: 38 responses,
requests, warcinfo, metadata and resource records), re-written over and over with warcio's
WARCWriter, gzip per record, each copy with a new WARC-Record-ID and a target URI made unique
by a `?copy=<n>` query, until the file reaches its size (100 MB and 1 GB by default).
Per size it runs (a) a plain single-process warcio loop (iterate the records, read each
content stream) and (b) `tasks.crawl.warc.ingest_warc` in Spark local[2] over the same
records; each size is built as two files of half the size, so both cores work (one file per
task), and the loop reads both in turn. It reports wall seconds,
response records/s and the peak RSS of the loop's process and of each Spark Python worker
(psutil, every 0.1 s, the largest single worker). Writes bench/results/warc.json.
Run: `nice -n 10 .venv/bin/python bench/warc.py [--sizes-mb 100 1000]`.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ holds tokenize.py, which would shadow the standard library's tokenize module.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

import psutil  # noqa: E402
from warcio.archiveiterator import ArchiveIterator  # noqa: E402
from warcio.warcwriter import WARCWriter  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import CORPUS  # noqa: E402
from tasks.common.spark import spark_session  # noqa: E402
from tasks.config import CrawlConfig, SparkConfig  # noqa: E402
from tasks.crawl.warc import ingest_warc  # noqa: E402


def real_records() -> list[tuple]:
    """(type, uri, http headers, raw payload, warc headers) of every record in the corpus's
    WARC files (WET and WAT left out)."""
    found = []
    for path in sorted((CORPUS / "warc").glob("*.warc.gz")):
        with open(path, "rb") as stream:
            for record in ArchiveIterator(stream):
                headers = {
                    k: v
                    for k, v in record.rec_headers.headers
                    if k not in ("WARC-Record-ID", "WARC-Target-URI", "Content-Length")
                    and not k.startswith("WARC-Payload-Digest")
                    and not k.startswith("WARC-Block-Digest")
                }
                found.append(
                    (
                        record.rec_type,
                        record.rec_headers.get_header("WARC-Target-URI"),
                        record.http_headers,
                        record.raw_stream.read(),
                        headers,
                    )
                )
    return found


def build_warc(path: Path, size: int, records: list[tuple]) -> int:
    """Write `records` again and again (new ids and URIs) to `path` until it holds `size`
    bytes; return the response records written."""
    responses, copy = 0, 0
    with open(path, "wb") as out:
        writer = WARCWriter(out, gzip=True)
        while out.tell() < size:
            copy += 1
            for rec_type, uri, http, payload, headers in records:
                target = f"{uri}{'&' if '?' in (uri or '') else '?'}copy={copy}" if uri else uri
                headers = {**headers, "WARC-Record-ID": f"<urn:uuid:{uuid.uuid4()}>"}
                record = writer.create_warc_record(
                    target,
                    rec_type,
                    payload=io.BytesIO(payload),
                    http_headers=http,
                    warc_headers_dict=headers,
                )
                writer.write_record(record)
                responses += rec_type == "response"
    return responses


class WorkerPeak:
    """The largest RSS of any one Python descendant (Spark's workers) and of this process."""

    def __init__(self) -> None:
        self.worker, self.me = 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(0.1):
            self.me = max(self.me, me.memory_info().rss)
            for proc in me.children(recursive=True):
                try:
                    if "python" in proc.name():
                        self.worker = max(self.worker, proc.memory_info().rss)
                except psutil.Error:
                    pass

    def __enter__(self) -> WorkerPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def plain_loop(path: Path) -> int:
    """Response records of `path`, each content stream read to its end."""
    responses = 0
    with open(path, "rb") as stream:
        for record in ArchiveIterator(stream):
            if record.rec_type == "response":
                record.content_stream().read()
                responses += 1
    return responses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[100, 1000])
    args = parser.parse_args()
    spark = spark_session(SparkConfig(master="local[2]", shuffle_partitions=4))
    records = real_records()
    results = []
    for size_mb in args.sizes_mb:
        with tempfile.TemporaryDirectory(prefix="lmforge-bench-warc-") as tmp:
            halves = [Path(tmp) / f"big-{size_mb}mb-{k}.warc.gz" for k in range(2)]
            started = time.perf_counter()
            responses = sum(build_warc(p, size_mb * 2**19, records) for p in halves)
            build_s = time.perf_counter() - started
            with WorkerPeak() as memory:
                started = time.perf_counter()
                assert sum(plain_loop(p) for p in halves) == responses
                loop_s = time.perf_counter() - started
            loop_rss = memory.me
            config = CrawlConfig(warc_paths=[str(p) for p in halves])
            with WorkerPeak() as memory:
                started = time.perf_counter()
                stats = ingest_warc(spark, config, Path(tmp) / "out")
                spark_s = time.perf_counter() - started
            assert stats["warc_records"] == responses, stats
            row = {
                "size_mb": size_mb,
                "responses": responses,
                "build_s": round(build_s, 1),
                "loop_s": round(loop_s, 1),
                "loop_records_per_s": round(responses / loop_s),
                "loop_peak_rss_mb": round(loop_rss / 2**20),
                "spark_s": round(spark_s, 1),
                "spark_records_per_s": round(responses / spark_s),
                "spark_worker_peak_rss_mb": round(memory.worker / 2**20),
            }
            print(row, flush=True)
            results.append(row)
    head = (
        "| WARC | responses | loop s | loop rec/s | loop RSS | Spark s | Spark rec/s | worker RSS |"
    )
    print(f"\n{head}")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(
            f"| {r['size_mb']} MB | {r['responses']} | {r['loop_s']} | {r['loop_records_per_s']} "
            f"| {r['loop_peak_rss_mb']} MB | {r['spark_s']} | {r['spark_records_per_s']} "
            f"| {r['spark_worker_peak_rss_mb']} MB |"
        )
    out = ROOT / "bench" / "results" / "warc.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"cores": 2, "master": "local[2]", "sizes": results}, indent=2))


if __name__ == "__main__":
    main()
