"""Breadth-first crawl in Spark: a tiny site, the fault server, budgets, sitemaps, re-crawls,
and the embedded pydoc site. Every URL met ends as exactly one row with an outcome."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest

from tasks.config import CrawlConfig
from tasks.crawl.crawler import PREVIOUS, crawl, crawl_web
from tasks.crawl.pydoc_site import serve_site
from tasks.crawl.records import FETCHED_SCHEMA
from tasks.crawl.worker import fetch_partition

LOCAL = ["127.0.0.1"]
PREVIOUS_COLUMNS = [f"prev_{c}" for c in PREVIOUS]


@pytest.fixture()
def tiny_site(tmp_path: Path, closed_port: int) -> Path:
    """Linked pages with a 404 link, an unreachable host, off-site and file: links, a cycle."""
    site = tmp_path / "site"
    site.mkdir()
    pages = {
        "index.html": f"""<title>Front</title><a href="a.html">a</a> <a href="b.html#part">b</a>
            <a href="a.html#top">a again</a> <a href="missing.html">gone</a>
            <a href="http://127.0.0.1:{closed_port}/down.html">down</a>
            <a href="https://example.com/">off-site</a> <a href="file:/etc/hostname">file</a>""",
        "a.html": '<a href="/">home</a> <a href="b.html">b</a> <a href="c.html">c</a>',
        "b.html": '<a href="a.html">a</a> <a href="notes.txt">notes</a>',
        "c.html": '<p>Depth two.</p><a href="d.html">d</a>',
        "d.html": "<p>Depth three: beyond max_depth.</p>",
        "notes.txt": "plain text, not HTML",
    }
    for name, body in pages.items():
        (site / name).write_text(body, encoding="utf-8")
    return site


def read_rows(spark, pages_dir: Path, prefix: str) -> dict[str, dict]:
    rows = [r.asDict() for r in spark.read.parquet(str(pages_dir)).collect()]
    by_url = {r["url"].removeprefix(prefix): r for r in rows}
    assert len(by_url) == len(rows), "a URL has more than one row"
    return by_url


def test_crawl_is_breadth_first_once_per_url_and_records_errors(spark, tiny_site, tmp_path):
    config = CrawlConfig(max_depth=2, timeout_s=5, allow_private_hosts=LOCAL)
    with serve_site(tiny_site) as front:
        stats = crawl_web(spark, [front], config, tmp_path / "pages")
    rows = read_rows(spark, tmp_path / "pages", front)
    depths = {path: row["depth"] for path, row in rows.items() if "down.html" not in path}
    assert depths == {
        "": 0,
        "a.html": 1,
        "b.html": 1,
        "missing.html": 1,
        "c.html": 2,
        "notes.txt": 2,
        "d.html": 3,
    }
    [down] = [row for row in rows.values() if row["url"].endswith("/down.html")]
    assert down["depth"] == 1 and down["status"] is None
    assert down["error"].startswith("connection refused")
    missing = rows["missing.html"]
    assert (missing["status"], missing["error"], missing["html"]) == (404, "http 404", None)
    beyond = rows["d.html"]
    assert (beyond["outcome"], beyond["status"], beyond["bytes"]) == ("budget", None, 0)
    assert beyond["error"] == "budget: max_depth"

    front_page = rows[""]
    assert front_page["status"] == 200 and front_page["outcome"] == "ok"
    assert front_page["content_type"] == "text/html" and "Front" in front_page["html"]
    assert front_page["bytes"] == len((tiny_site / "index.html").read_bytes())
    assert rows["notes.txt"]["content_type"] == "text/plain"
    assert stats["urls"] == 8 and stats["pages_fetched"] == 7 and stats["pages_ok"] == 5
    assert stats["errors"] == {"budget": 1, "connection refused": 1, "http 404": 1}
    assert stats["depth_reached"] == 2 and stats["allowed_hosts"] == ["127.0.0.1"]


def test_crawl_stops_at_max_pages_and_per_host_limits(spark, tiny_site, tmp_path):
    config = CrawlConfig(max_pages=3, allow_private_hosts=LOCAL)
    with serve_site(tiny_site) as front:
        stats = crawl_web(spark, [front], config, tmp_path / "pages")
    rows = read_rows(spark, tmp_path / "pages", front).values()
    assert sorted(r["depth"] for r in rows if r["outcome"] != "budget") == [0, 1, 1]
    assert {r["error"] for r in rows if r["outcome"] == "budget"} == {"budget: max_pages"}
    assert stats["pages_fetched"] == 3 and stats["errors"]["budget"] == len(rows) - 3

    config = CrawlConfig(max_pages_per_host=2, max_depth=1, allow_private_hosts=LOCAL)
    with serve_site(tiny_site) as front:
        stats = crawl_web(spark, [front], config, tmp_path / "per_host")
    assert stats["pages_fetched"] == 2  # the limit is per host name, whatever the port
    assert stats["errors"]["budget"] >= 3


def test_crawl_rejects_bad_seeds_and_limits(spark, tmp_path):
    with pytest.raises(ValueError, match="crawl.seeds"):
        crawl_web(spark, ["ftp://127.0.0.1/"], CrawlConfig(), tmp_path / "pages")
    with pytest.raises(ValueError, match="crawl.max_pages"):
        crawl_web(spark, ["http://127.0.0.1/"], CrawlConfig(max_pages=0), tmp_path / "pages")
    with pytest.raises(ValueError, match="crawl.include_patterns"):
        crawl_web(spark, ["http://127.0.0.1/"], CrawlConfig(include_patterns=["("]), tmp_path)


def test_crawl_of_the_fault_server_accounts_for_every_url(
    spark, fault_server, fault_config, tmp_path
):
    base, _ = fault_server
    # A budget no loaded machine reaches (Spark's start alone took ~40 s at load 9 on 2 cores):
    # every outcome below comes from the page's own fault, bounded by timeout_s and the retries.
    config = fault_config(
        max_depth=1, time_budget_s=900.0, timeout_s=1.0, max_retries=1, max_retry_after_s=1.0
    )
    stats = crawl_web(spark, [base + "/"], config, tmp_path / "pages")
    rows = read_rows(spark, tmp_path / "pages", base)
    outcomes = {path: row["outcome"] for path, row in rows.items()}
    assert outcomes == {
        "/": "ok",
        "/ok.html": "ok",
        "/slow.html": "timeout",
        "/drip.html": "timeout",
        "/500.html": "http 500",
        "/flaky.html": "ok",
        "/429.html": "ok",
        "/429-always.html": "http 429",
        "/reset.html": "connection error",
        "/loop-a.html": "redirect loop",
        "/endless/0": "redirect",
        "/big.html": "ok",
        "/bomb.html": "ok",
        "/bad-bytes.html": "ok",
        "/latin.html": "ok",
        "/image.png": "content type",
        "/private/secret.html": "robots",
        "/to-metadata.html": "scope",  # off-site: refused before the address is checked
        "/etag.html": "ok",
    }
    assert rows["/big.html"]["truncated"] and rows["/big.html"]["bytes"] == 1_000_000
    assert rows["/bomb.html"]["truncated"] and stats["truncated"] == 2
    assert all(r["fetch_ms"] >= 0 and r["fetched_at"] for r in rows.values())
    assert stats["urls"] == len(rows) and stats["pages_ok"] == 9


def test_time_budget_stops_fetching_and_accounts_the_rest(
    spark, fault_server, fault_config, tmp_path
):
    base, _ = fault_server
    config = fault_config(max_depth=1, time_budget_s=8.0, host_delay_s=0.5, max_retries=0)
    started = time.time()
    stats = crawl_web(spark, [base + "/"], config, tmp_path / "pages")
    # Spark's own job and worker start-up is outside the budget; every fetch is inside it.
    assert time.time() - started < 8.0 + 60.0
    rows = read_rows(spark, tmp_path / "pages", base)
    fetched = [r for r in rows.values() if r["outcome"] != "budget"]
    for row in fetched:  # the budget stops fetches at 8 s; 3 s more for a loaded machine
        ended = datetime.fromisoformat(row["fetched_at"]).timestamp() + row["fetch_ms"] / 1000
        assert ended <= started + 8.0 + 3.0, row["url"]
    # 'budget: time', or 'budget: time (crawl delay of <host>)' when the host's next request
    # would have had to wait past the deadline: which one depends on the machine's speed
    reasons = {r["error"] for r in rows.values() if r["outcome"] == "budget"}
    assert reasons and all(reason.startswith("budget: time") for reason in reasons)
    assert len(fetched) <= 17  # 0.5 s between requests: at most 16 fit in 8 s, + robots.txt
    assert stats["urls"] == len(rows) and stats["errors"]["budget"] == len(rows) - len(fetched)


def test_a_partition_stops_at_the_deadline(fault_server, fault_config):
    base, _ = fault_server
    config = fault_config(host_delay_s=1.0, max_retries=0)
    urls = [f"{base}/ok.html?n={i}" for i in range(20)]  # answered 404: the server wants /ok.html
    frontier = [{"url": u, **dict.fromkeys(PREVIOUS_COLUMNS)} for u in urls]
    started = time.time()
    rows = list(fetch_partition(frontier, 1, config, lambda url: True, started + 3.0))
    # without the deadline the twenty requests, 1 s apart, would take 19 s and more
    assert time.time() - started < 3.0 + 5.0
    assert all(list(row) == FETCHED_SCHEMA.names for row in rows)
    outcomes = [row["outcome"] for row in rows]
    # 1 s between requests: at most 3 start in 3 s (robots.txt is not gated, but on a loaded
    # machine it can take a while, leaving room for fewer); the rest are refused.
    assert len(rows) == 20 and 1 <= 20 - outcomes.count("budget") <= 3


def test_sitemaps_seed_and_a_recrawl_keeps_unchanged_pages(
    spark, fault_server, fault_config, tmp_path
):
    base, hits = fault_server
    config = fault_config(max_depth=0, sitemaps=[base + "/sitemap-index.xml"])
    first = crawl(spark, config, tmp_path / "first")
    assert first["sitemaps"] == {"sitemaps_read": 2, "sitemap_errors": {}}
    assert first["pages_ok"] == 3 and first["not_modified"] == 0

    config.previous_output = str(tmp_path / "first")
    second = crawl(spark, config, tmp_path / "second")
    assert second["pages_ok"] == 3 and second["not_modified"] == 1
    rows = read_rows(spark, tmp_path / "second" / "pages", base)
    kept = rows["/etag.html"]
    assert (kept["outcome"], kept["status"], kept["bytes"]) == ("not_modified", 200, 0)
    assert "versioned page" in kept["html"] and kept["etag"] == '"v1"'
    assert rows["/ok.html"]["outcome"] == "ok" and hits["/etag.html"] == 2


def test_crawl_defaults_to_the_embedded_pydoc_site(spark, tmp_path):
    config = CrawlConfig(site_modules=20, max_depth=1, max_pages=50, site_feed_items=3)
    stats = crawl(spark, config, tmp_path / "out")
    pages = spark.read.parquet(str(tmp_path / "out" / "pages")).where("outcome = 'ok'")
    assert stats["site"]["modules_rendered"] == 20 and stats["books"] == 0
    assert stats["pages_fetched"] == stats["pages_ok"] == pages.count() == 21
    assert pages.where("depth = 1 and html like '%<title>Python: %'").count() == 20
    assert not (tmp_path / "out" / "books").exists()
    # The site's RSS feed: its first 3 pages, fetched again as news.
    assert stats["news"]["feed_errors"] == {} and stats["news"]["articles_ok"] == 3
    news = spark.read.parquet(str(tmp_path / "out" / "news")).collect()
    assert {r["source"] for r in news} == {"news"} and len(news) == 3
    assert all(r["meta"]["guid"].startswith("pydoc:") and r["meta"]["published_at"] for r in news)
