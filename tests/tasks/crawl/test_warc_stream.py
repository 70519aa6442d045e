"""WARC files streamed: a Common Crawl `warc.paths.gz` list served over HTTP on 127.0.0.1,
per-file Parquet parts with completion markers (a re-run reads only unfinished files),
failures counted per file, and memory that does not follow a file's size."""

from __future__ import annotations

import gzip
import shutil
import threading
import time
import tracemalloc
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tasks.config import CrawlConfig
from tasks.crawl.file_parts import file_key, marker_path
from tasks.crawl.warc import ingest_warc, warc_locations, warc_records

DATA = Path(__file__).resolve().parents[2] / "data" / "warc"
SEGMENT = "crawl-data/CC-MAIN-2024-22/segments/1715971057216.39/warc"
FILES = ["whirlwind.warc.gz", "whirlwind.warc.wet.gz", "sample-0000.warc.gz"]


class RequestLog(list):
    """The paths asked for, in order; `starts` holds the time.monotonic() of each."""

    def __init__(self) -> None:
        super().__init__()
        self.starts: list[float] = []


class _Handler(BaseHTTPRequestHandler):
    served: dict[str, Path]
    log: RequestLog

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.log.starts.append(time.monotonic())
        self.log.append(self.path)
        path = self.served.get(self.path)
        if path is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(path.stat().st_size))
        self.end_headers()
        with open(path, "rb") as body:
            shutil.copyfileobj(body, self.wfile, 65536)


@pytest.fixture()
def warc_server(tmp_path: Path) -> Iterator[tuple[str, RequestLog, dict[str, Path]]]:
    """Serves `FILES` (and whatever a test adds to the dict) under /SEGMENT/ on 127.0.0.1;
    yields the base URL, the request log (paths) and the served {path: file}."""
    served = {f"/{SEGMENT}/{name}": DATA / name for name in FILES}
    log = RequestLog()
    handler = type("Handler", (_Handler,), {"served": served, "log": log})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", log, served
    finally:
        server.shutdown()
        server.server_close()


def paths_file(folder: Path, entries: list[str]) -> Path:
    """A `warc.paths.gz` in Common Crawl's format: gzip text, one relative path a line."""
    path = folder / "warc.paths.gz"
    path.write_bytes(gzip.compress("".join(f"{e}\n" for e in entries).encode()))
    return path


def config_for(base: str, paths: Path, **overrides: object) -> CrawlConfig:
    values = dict(
        warc_paths=[str(paths)],
        warc_base_url=base,
        allow_private_hosts=["127.0.0.1"],
        max_retries=0,
        read_timeout_s=5.0,
    )
    return CrawlConfig(**{**values, **overrides})


def rows_of(folder: Path) -> list[dict]:
    """Every record of the Parquet parts in `folder`, sorted by id."""
    rows = [
        row
        for part in sorted(folder.glob("part-*.parquet"))
        for row in pq.read_table(part).to_pylist()
    ]
    return sorted(rows, key=lambda row: row["id"])


def test_paths_list_is_read_resolved_and_limited(warc_server, tmp_path: Path) -> None:
    base, log, _ = warc_server
    entries = [f"{SEGMENT}/{name}" for name in [*FILES, "never-read.warc.gz"]]
    listed = paths_file(tmp_path, entries)
    config = config_for(base, listed, warc_max_files=3)
    assert warc_locations(config) == [f"{base}{SEGMENT}/{name}" for name in FILES]
    served = config_for(base, listed, warc_paths=[f"{base}{SEGMENT}/warc.paths.gz"])
    warc_server[2][f"/{SEGMENT}/warc.paths.gz"] = listed
    assert warc_locations(served)[-1] == f"{base}{SEGMENT}/never-read.warc.gz"
    assert f"/{SEGMENT}/warc.paths.gz" in log  # the list itself came over HTTP
    local = config_for(str(DATA), paths_file(tmp_path, FILES), warc_max_files=0)
    assert warc_locations(local) == [str(DATA / name) for name in FILES]


def test_rerun_after_a_crash_reads_only_the_unfinished_file(
    spark, warc_server, tmp_path: Path
) -> None:
    base, log, _ = warc_server
    config = config_for(base, paths_file(tmp_path, [f"{SEGMENT}/{name}" for name in FILES]))
    out = tmp_path / "warc"
    first = ingest_warc(spark, config, out)
    assert first == {
        "files": 3,
        "warc_files_read": 3,
        "warc_files_skipped_done": 0,
        "warc_files_failed": {},
        "warc_records": 23,  # 1 Common Crawl response + 22 wget responses
        "wet_records": 1,
    }
    before = rows_of(out)
    assert len(before) == 24 and len({row["id"] for row in before}) == 24
    assert {dict(row["meta"])["warc_file"] for row in before} == set(FILES)
    # A crash while sample-0000 was written: its marker never came, a temp file was left.
    sample = f"{base}{SEGMENT}/sample-0000.warc.gz"
    marker_path(out, sample).unlink()
    (out / f".part-{file_key(sample)}.attempt-0.tmp").write_bytes(b"half a parquet file")
    log.clear()
    second = ingest_warc(spark, config, out)
    assert second == {**first, "warc_files_read": 1, "warc_files_skipped_done": 2}
    assert [p for p in log if p.endswith(".gz")] == [f"/{SEGMENT}/sample-0000.warc.gz"]
    assert rows_of(out) == before
    assert not list(out.glob(".*")) and spark.read.parquet(str(out)).count() == 24
    log.clear()
    assert ingest_warc(spark, config, out)["warc_files_skipped_done"] == 3
    assert [p for p in log if p.endswith(".gz")] == []


def test_unreadable_files_are_counted_and_retried_next_run(
    spark, warc_server, tmp_path: Path
) -> None:
    base, _, _ = warc_server
    entries = [f"{SEGMENT}/missing.warc.gz", f"{SEGMENT}/sample-0000.warc.gz"]
    config = config_for(base, paths_file(tmp_path, [*entries, f"{SEGMENT}/whirlwind.warc.gz"]))
    capped = config_for(base, config.warc_paths[0], max_file_bytes=100_000)
    stats = ingest_warc(spark, capped, tmp_path / "warc")
    assert stats["warc_files_failed"] == {
        "OSError: <file>: http 404": 1,
        "OSError: larger than crawl.max_file_bytes (100000 bytes)": 1,  # sample-0000: 214 kB
    }
    assert stats["warc_files_read"] == 1 and stats["warc_records"] == 1
    assert len(list((tmp_path / "warc").glob("part-*.parquet"))) == 1
    again = ingest_warc(spark, config, tmp_path / "warc")  # the cap raised: sample-0000 now read
    assert again["warc_files_skipped_done"] == 1 and again["warc_records"] == 23
    assert again["warc_files_failed"] == {"OSError: <file>: http 404": 1}


def test_memory_does_not_follow_the_file_size(warc_server, tmp_path: Path) -> None:
    """A 15 MB WARC (the real wget crawl's gzip members 70 times over) read over HTTP: the
    memory traced while streaming stays far below the file's size."""
    big = tmp_path / "big.warc.gz"
    with open(big, "wb") as out:
        for _ in range(70):
            out.write((DATA / "sample-0000.warc.gz").read_bytes())
    base, _, served = warc_server
    served[f"/{SEGMENT}/big.warc.gz"] = big
    config = config_for(base, big)
    tracemalloc.start()
    try:
        records = sum(1 for _ in warc_records(f"{base}{SEGMENT}/big.warc.gz", config))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert records == 70 * 22
    assert big.stat().st_size > 14_000_000 and peak < 3_000_000


def test_resume_dir_outlives_a_failed_step_output(spark, warc_server, tmp_path: Path) -> None:
    """With `crawl.warc_resume_dir`, a new step output (the failed one's folder was removed)
    gets the finished files' parts without a second GET; other `max_bytes` reads them again."""
    base, log, _ = warc_server
    listed = paths_file(tmp_path, [f"{SEGMENT}/{name}" for name in FILES])
    config = config_for(base, listed, warc_resume_dir=str(tmp_path / "resume"))
    first = ingest_warc(spark, config, tmp_path / "try-1" / "warc")
    before = rows_of(tmp_path / "try-1" / "warc")
    shutil.rmtree(tmp_path / "try-1")  # run_step removes a failed attempt's folder
    log.clear()
    second = ingest_warc(spark, config, tmp_path / "try-2" / "warc")
    assert second == {**first, "warc_files_read": 0, "warc_files_skipped_done": 3}
    assert [p for p in log if p.endswith(".gz")] == []
    assert rows_of(tmp_path / "try-2" / "warc") == before
    cut = config_for(base, listed, warc_resume_dir=config.warc_resume_dir, max_bytes=1000)
    assert ingest_warc(spark, cut, tmp_path / "try-3" / "warc")["warc_files_read"] == 3


def test_remote_files_are_fetched_safely_and_politely(warc_server) -> None:
    base, log, _ = warc_server
    url = f"{base}{SEGMENT}/whirlwind.warc.gz"
    with pytest.raises(OSError, match="unsafe: 127.0.0.1 resolves to non-public"):
        list(warc_records(url, CrawlConfig()))  # loopback is refused unless allowed
    assert log == []
    polite = CrawlConfig(allow_private_hosts=["127.0.0.1"], host_delay_s=0.4)
    for name in FILES:
        list(warc_records(f"{base}{SEGMENT}/{name}", polite))
    starts = [t for p, t in zip(log, log.starts, strict=True) if p.endswith(".gz")]
    assert len(starts) == 3 and min(b - a for a, b in pairwise(starts)) >= 0.39


def test_the_crawl_step_keeps_warc_parts_outside_its_output_by_default(tmp_path: Path) -> None:
    from tasks.config import load_config
    from tasks.crawl.task import resumable

    config = load_config(None, [f"run.work_dir={tmp_path}"])
    assert resumable(config).warc_resume_dir == str(tmp_path / "crawl" / ".warc-parts")
    chosen = load_config(None, [f"run.work_dir={tmp_path}", "crawl.warc_resume_dir=/data/parts"])
    assert resumable(chosen).warc_resume_dir == "/data/parts"
