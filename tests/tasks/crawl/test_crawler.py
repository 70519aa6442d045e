"""Breadth-first crawl in Spark over a tiny local site, and over the embedded pydoc site."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.config import CrawlConfig
from tasks.crawl.crawler import crawl, crawl_web
from tasks.crawl.pydoc_site import serve_site


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


def test_crawl_is_breadth_first_once_per_url_and_records_errors(spark, tiny_site, tmp_path):
    with serve_site(tiny_site) as front:
        stats = crawl_web(spark, [front], CrawlConfig(max_depth=2, timeout_s=5), tmp_path / "pages")
    rows = {
        r["url"].removeprefix(front): r
        for r in spark.read.parquet(str(tmp_path / "pages")).collect()
    }

    depths = {path: row["depth"] for path, row in rows.items() if "down.html" not in path}
    assert depths == {
        "": 0,
        "a.html": 1,
        "b.html": 1,
        "missing.html": 1,
        "c.html": 2,
        "notes.txt": 2,
    }
    [down] = [row for row in rows.values() if row["url"].endswith("/down.html")]
    assert down["depth"] == 1 and down["status"] is None
    assert down["error"].startswith("connection refused")
    missing = rows["missing.html"]
    assert (missing["status"], missing["error"], missing["html"]) == (404, "http 404", None)

    front_page = rows[""]
    assert front_page["status"] == 200 and front_page["error"] is None
    assert front_page["content_type"] == "text/html" and "Front" in front_page["html"]
    assert front_page["bytes"] == len((tiny_site / "index.html").read_bytes())
    assert rows["notes.txt"]["content_type"] == "text/plain"
    assert stats["pages_fetched"] == 7 and stats["pages_ok"] == 5
    assert stats["errors"] == {"connection refused": 1, "http 404": 1}
    assert stats["depth_reached"] == 2 and stats["allowed_hosts"] == ["127.0.0.1"]


def test_crawl_stops_at_max_pages(spark, tiny_site, tmp_path):
    with serve_site(tiny_site) as front:
        stats = crawl_web(spark, [front], CrawlConfig(max_pages=3), tmp_path / "pages")
    depths = sorted(r["depth"] for r in spark.read.parquet(str(tmp_path / "pages")).collect())
    assert depths == [0, 1, 1] and stats["pages_fetched"] == 3


def test_crawl_rejects_bad_seeds_and_limits(spark, tmp_path):
    with pytest.raises(ValueError, match="crawl.seeds"):
        crawl_web(spark, ["ftp://127.0.0.1/"], CrawlConfig(), tmp_path / "pages")
    with pytest.raises(ValueError, match="crawl.max_pages"):
        crawl_web(spark, ["http://127.0.0.1/"], CrawlConfig(max_pages=0), tmp_path / "pages")


def test_crawl_defaults_to_the_embedded_pydoc_site(spark, tmp_path):
    config = CrawlConfig(site_modules=20, max_depth=1, max_pages=50)
    stats = crawl(spark, config, tmp_path / "out")
    pages = spark.read.parquet(str(tmp_path / "out" / "pages"))
    assert stats["site"]["modules_rendered"] == 20 and stats["books"] == 0
    assert stats["pages_fetched"] == stats["pages_ok"] == pages.count() == 21
    assert pages.where("depth = 1 and html like '%<title>Python: %'").count() == 20
    assert not (tmp_path / "out" / "books").exists()
