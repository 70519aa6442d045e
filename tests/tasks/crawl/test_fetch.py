"""Fetching one URL and finding its links: failures become records, links are normalised."""

from __future__ import annotations

from tasks.config import CrawlConfig
from tasks.crawl.fetch import decode_body, extract_links, fetch_page, normalise_url
from tasks.crawl.records import FETCHED_SCHEMA

LOCAL = frozenset({"127.0.0.1"})


def test_normalise_url() -> None:
    assert normalise_url(" HTTP://Example.COM#top ") == "http://example.com/"
    assert normalise_url("https://h/a/b.html?q=1#x") == "https://h/a/b.html?q=1"
    for url in ("file:/usr/lib/python3/json.py", "mailto:a@b.c", "javascript:void(0)", "/x"):
        assert normalise_url(url) is None, url


def test_extract_links_resolves_filters_and_dedups() -> None:
    html = """<a href="json.html">json</a> <a href="json.html#loads">again</a>
    <a href="sub/page.html">sub</a> <a href="../up.html">up</a> <a href=".">index</a>
    <a href="file:/usr/lib/python3.11/json/__init__.py">source</a>
    <a href="https://docs.python.org/3/">elsewhere</a> <a href="mailto:x@y.z">mail</a>
    <a name="anchor-only">no href</a> <area href="http://127.0.0.1:8000/map.html">"""
    links = extract_links(html, "http://127.0.0.1:8000/dir/page.html", LOCAL)
    assert links == [
        "http://127.0.0.1:8000/dir/",
        "http://127.0.0.1:8000/dir/json.html",
        "http://127.0.0.1:8000/dir/sub/page.html",
        "http://127.0.0.1:8000/map.html",
        "http://127.0.0.1:8000/up.html",
    ]


def test_extract_links_honours_base_href() -> None:
    html = '<head><base href="http://127.0.0.1/docs/"></head><a href="a.html">a</a>'
    assert extract_links(html, "http://127.0.0.1/x/y.html", LOCAL) == [
        "http://127.0.0.1/docs/a.html"
    ]


def test_decode_body_uses_declared_charset_else_utf8_with_replacement() -> None:
    assert decode_body("café".encode("latin-1"), "iso-8859-1") == "café"
    assert decode_body("café".encode(), None) == "café"
    assert decode_body(b"caf\xe9", None) == "caf\ufffd"
    assert decode_body("café".encode(), "no-such-charset") == "café"


def test_unreachable_url_is_a_record_not_an_exception(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/"
    fetched = fetch_page(url, 2, CrawlConfig(timeout_s=2), LOCAL)
    row = dict(zip(FETCHED_SCHEMA.names, fetched, strict=True))
    assert row["url"] == url and row["host"] == "127.0.0.1" and row["depth"] == 2
    assert row["status"] is None and row["html"] is None and row["bytes"] == 0
    assert row["error"].startswith("connection refused: ")
    assert row["links"] == [] and row["fetch_ms"] >= 0 and row["fetched_at"].endswith("+00:00")
