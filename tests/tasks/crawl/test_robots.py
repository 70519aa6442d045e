"""robots.txt (disallow, crawl-delay, our user agent, failures) and the per-host gate."""

from __future__ import annotations

import threading
import time
from itertools import pairwise
from pathlib import Path

import pytest

from tasks.config import CrawlConfig
from tasks.crawl.fetch import fetch_url
from tasks.crawl.politeness import HostGate, OutOfTime
from tasks.crawl.pydoc_site import serve_site
from tasks.crawl.robots import RobotsCache, parse_robots

AGENT = CrawlConfig().user_agent
ROBOTS = """User-agent: lmforge-crawler
Disallow: /only-us/
Crawl-delay: 0.3

User-agent: *
Disallow: /private/
"""


def robots_record(status: int | None, text: str = "", error: str | None = None) -> dict:
    return {"status": status, "html": text, "error": error}


def test_rules_for_our_agent_and_for_others():
    rules = parse_robots(robots_record(200, ROBOTS))
    assert rules.verdict("http://h/only-us/a.html", AGENT) == "robots: disallowed"
    assert rules.verdict("http://h/private/a.html", AGENT) is None  # our group has no such rule
    assert rules.verdict("http://h/private/a.html", "other-bot/1.0") == "robots: disallowed"
    assert rules.delay(AGENT) == 0.3 and rules.delay("other-bot/1.0") == 0.0


def test_missing_robots_allows_and_failing_robots_refuses():
    assert parse_robots(robots_record(404, error="http 404")).verdict("http://h/x", AGENT) is None
    down = parse_robots(robots_record(503, error="http 503"))
    assert down.verdict("http://h/x", AGENT) == "robots: http 503"
    refused = parse_robots(robots_record(None, error="connection refused: [Errno 111]"))
    assert refused.verdict("http://h/x", AGENT).startswith("connection refused")


def test_the_cache_fetches_robots_once_per_origin_and_crawl():
    cache, config, fetched = RobotsCache(), CrawlConfig(), []

    def fetch(url: str) -> dict:
        fetched.append(url)
        return robots_record(200, ROBOTS)

    crawl = time.time() + 60  # a crawl's deadline
    for origin in ("http://h:1", "http://h:1", "http://h:2", "http://h:1"):
        cache.rules(origin, config, fetch, crawl)
    assert fetched == ["http://h:1/robots.txt", "http://h:2/robots.txt"]
    cache.rules("http://h:1", config, fetch, crawl + 1)  # the next crawl, e.g. in a reused worker
    assert len(fetched) == 3
    cache.rules("http://h:1", config, fetch)
    cache.rules("http://h:1", config, fetch)  # no crawl: shared within the process
    assert len(fetched) == 4
    past = time.time() - 1  # a crawl whose deadline has passed: its rules go at the next fetch
    cache.rules("http://h:1", config, fetch, past)
    cache.rules("http://h:3", config, fetch, crawl)
    cache.rules("http://h:1", config, fetch, past)
    assert len(fetched) == 7
    cache.clear()
    assert cache.rules("http://h:2", config, fetch, crawl).verdict("http://h:2/a", AGENT) is None
    assert fetched[-1] == "http://h:2/robots.txt" and len(fetched) == 8


def test_fetch_url_honours_disallow_and_crawl_delay(tmp_path: Path):
    (tmp_path / "robots.txt").write_text(ROBOTS)
    (tmp_path / "only-us").mkdir()
    for name in ("a.html", "b.html", "c.html", "only-us/x.html"):
        (tmp_path / name).write_text(f"<p>{name}</p>")
    config = CrawlConfig(allow_private_hosts=["127.0.0.1"], timeout_s=2)
    with serve_site(tmp_path) as front:
        assert fetch_url(front + "only-us/x.html", config)["error"] == "robots: disallowed"
        started = time.monotonic()
        records = [fetch_url(front + name, config) for name in ("a.html", "b.html", "c.html")]
        elapsed = time.monotonic() - started
    assert [r["outcome"] for r in records] == ["ok", "ok", "ok"]
    assert elapsed >= 0.55  # three requests, 0.3 s apart (Crawl-delay)


def test_host_gate_bounds_concurrency_and_spacing():
    gate, active, peak = HostGate(), [0], [0]
    lock = threading.Lock()

    def request() -> None:
        with gate.slot("h", concurrency=2, interval=0.0, deadline=time.monotonic() + 10):
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            time.sleep(0.1)
            with lock:
                active[0] -= 1

    threads = [threading.Thread(target=request) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak[0] == 2

    starts = []
    for _ in range(3):
        with gate.slot("spaced", concurrency=1, interval=0.2, deadline=time.monotonic() + 10):
            starts.append(time.monotonic())
    assert min(b - a for a, b in pairwise(starts)) >= 0.19
    with pytest.raises(OutOfTime), gate.slot("spaced", 1, 5.0, time.monotonic() + 0.05):
        pass
