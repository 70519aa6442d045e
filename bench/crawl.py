"""Crawl speed and politeness: the Spark crawler over several hosts against a single-threaded
polite `fetch_url` loop over the same URLs.

Hosts are loopback addresses 127.0.0.2.. (one server each, a fixed latency per request, a
`crawl.host_delay_s` gap asked between requests). The servers log every request, so the
smallest gap between two requests to one host and the most requests in flight at once per
host are measured on the server side (robots.txt, fetched once per host, is left out).
Prints a table and writes bench/results/crawl.json. Run by hand:
`.venv/bin/python bench/crawl.py [pages] [hosts]` (defaults 2000 and 8).
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from collections import defaultdict
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from pathlib import Path

# bench/ holds tokenize.py, which would shadow the standard library's tokenize module.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from tasks.common.spark import spark_session  # noqa: E402
from tasks.config import CrawlConfig, SparkConfig  # noqa: E402
from tasks.crawl.crawler import crawl_web  # noqa: E402
from tasks.crawl.fetch import fetch_url  # noqa: E402

LATENCY_S = 0.02
HOST_DELAY_S = 0.05
WORDS = "crawler politeness host delay robots budget frontier breadth first page".split()


class RequestLog:
    """Per host: request start/end times and the most requests in flight at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.starts: dict[str, list[float]] = defaultdict(list)
        self.active: dict[str, int] = defaultdict(int)
        self.peak: dict[str, int] = defaultdict(int)

    def enter(self, host: str) -> None:
        with self.lock:
            self.starts[host].append(time.monotonic())
            self.active[host] += 1
            self.peak[host] = max(self.peak[host], self.active[host])

    def leave(self, host: str) -> None:
        with self.lock:
            self.active[host] -= 1

    def gaps(self) -> list[float]:
        """Seconds between consecutive requests to one host, all hosts, sorted."""
        return sorted(b - a for s in self.starts.values() for a, b in pairwise(sorted(s)))


class SlowHandler(SimpleHTTPRequestHandler):
    log: RequestLog

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        host = self.server.server_address[0]
        if self.path == "/robots.txt":  # fetched once per host, outside the request gaps
            return super().do_GET()
        self.log.enter(host)
        try:
            time.sleep(LATENCY_S)
            super().do_GET()
        finally:
            self.log.leave(host)


def write_site(folder: Path, pages: int) -> None:
    links = "".join(f'<a href="p{i}.html">page {i}</a>\n' for i in range(pages))
    (folder / "index.html").write_text(f"<html><body>{links}</body></html>")
    for i in range(pages):
        text = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(600))
        (folder / f"p{i}.html").write_text(f"<html><title>p{i}</title><p>{text}</p></html>")


def serve(folder: Path, hosts: list[str], log: RequestLog) -> list[ThreadingHTTPServer]:
    handler = type("Handler", (SlowHandler,), {"log": log})
    servers = [ThreadingHTTPServer((h, 0), partial(handler, directory=str(folder))) for h in hosts]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    return servers


def main(pages: int, n_hosts: int) -> None:
    hosts = [f"127.0.0.{i + 2}" for i in range(n_hosts)]
    per_host = max(1, pages // n_hosts)
    config = CrawlConfig(
        allowed_hosts=hosts,
        allow_private_hosts=["127.0.0.0/8"],
        max_pages=pages + n_hosts,
        max_depth=1,
        host_delay_s=HOST_DELAY_S,
        partitions=4,
        host_threads=8,
        timeout_s=10,
    )
    spark = spark_session(SparkConfig(master="local[2]"))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        write_site(Path(tmp), per_host)
        for name in ("spark_crawler", "sequential_fetch_url"):
            log = RequestLog()
            servers = serve(Path(tmp), hosts, log)
            seeds = [
                f"http://{h}:{s.server_address[1]}/" for h, s in zip(hosts, servers, strict=True)
            ]
            started = time.monotonic()
            if name == "spark_crawler":
                stats = crawl_web(spark, seeds, config, Path(tmp) / "out" / "pages")
                ok = stats["pages_ok"]
            else:
                urls = seeds + [f"{s}p{i}.html" for s in seeds for i in range(per_host)]
                ok = sum(fetch_url(u, config)["outcome"] == "ok" for u in urls)
            seconds = time.monotonic() - started
            for server in servers:
                server.shutdown()
                server.server_close()
            results[name] = {
                "pages_ok": ok,
                "seconds": round(seconds, 2),
                "pages_per_s": round(ok / seconds, 1),
                # Server-side times: thread scheduling adds jitter to single gaps on a busy host.
                "min_gap_per_host_s": round(log.gaps()[0], 4),
                "median_gap_per_host_s": round(log.gaps()[len(log.gaps()) // 2], 4),
                "max_in_flight_per_host": max(log.peak.values()),
            }
    spark.stop()
    speedup = (
        results["spark_crawler"]["pages_per_s"] / results["sequential_fetch_url"]["pages_per_s"]
    )
    report = {
        "pages": pages,
        "hosts": n_hosts,
        "latency_s": LATENCY_S,
        "host_delay_s": HOST_DELAY_S,
        "results": results,
        "speedup": round(speedup, 2),
    }
    print(
        f"{'path':<22} {'pages ok':>9} {'s':>8} {'pages/s':>9} {'min gap s':>10} "
        f"{'median gap':>10} {'in flight':>10}"
    )
    for name, r in results.items():
        print(
            f"{name:<22} {r['pages_ok']:>9} {r['seconds']:>8} {r['pages_per_s']:>9} "
            f"{r['min_gap_per_host_s']:>10} {r['median_gap_per_host_s']:>10} "
            f"{r['max_in_flight_per_host']:>10}"
        )
    print(f"speedup {speedup:.2f}x; the gap asked per host is {HOST_DELAY_S} s")
    out = ROOT / "bench" / "results" / "crawl.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 2000,
        int(sys.argv[2]) if len(sys.argv) > 2 else 8,
    )
