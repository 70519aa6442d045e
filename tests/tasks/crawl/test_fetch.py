"""URLs, links and charsets; one URL fetched: failures become records, never exceptions."""

from __future__ import annotations

import re

from tasks.config import CrawlConfig
from tasks.crawl.charset import decode_body
from tasks.crawl.fetch import fetch_url
from tasks.crawl.links import extract_links, normalise_url
from tasks.crawl.scope import Scope


def local(url: str) -> bool:
    return "//127.0.0.1" in url


def test_normalise_url() -> None:
    assert normalise_url(" HTTP://Example.COM#top ") == "http://example.com/"
    assert normalise_url("https://h/a/b.html?q=1#x") == "https://h/a/b.html?q=1"
    assert normalise_url("http://h/a?b=2&a=1") == "http://h/a?a=1&b=2"
    for url in ("file:/usr/lib/python3/json.py", "mailto:a@b.c", "javascript:void(0)", "/x"):
        assert normalise_url(url) is None, url


def test_extract_links_resolves_filters_and_dedups() -> None:
    html = """<a href="json.html">json</a> <a href="json.html#loads">again</a>
    <a href="sub/page.html">sub</a> <a href="../up.html">up</a> <a href=".">index</a>
    <a href="file:/usr/lib/python3.11/json/__init__.py">source</a>
    <a href="https://docs.python.org/3/">elsewhere</a> <a href="mailto:x@y.z">mail</a>
    <a name="anchor-only">no href</a> <area href="http://127.0.0.1:8000/map.html">"""
    links = extract_links(html, "http://127.0.0.1:8000/dir/page.html", local)
    assert links == [
        "http://127.0.0.1:8000/dir/",
        "http://127.0.0.1:8000/dir/json.html",
        "http://127.0.0.1:8000/dir/sub/page.html",
        "http://127.0.0.1:8000/map.html",
        "http://127.0.0.1:8000/up.html",
    ]


def test_extract_links_honours_base_href() -> None:
    html = '<head><base href="http://127.0.0.1/docs/"></head><a href="a.html">a</a>'
    assert extract_links(html, "http://127.0.0.1/x/y.html", local) == [
        "http://127.0.0.1/docs/a.html"
    ]


def test_scope_matches_subdomains_and_patterns() -> None:
    scope = Scope(frozenset({"example.org"}), (re.compile("/docs/"),), (re.compile(r"\.pdf$"),))
    assert scope("https://www.example.org/docs/a.html") and scope("http://example.org/docs/")
    assert not scope("https://notexample.org/docs/a.html")
    assert not scope("https://example.org/blog/a.html")
    assert not scope("https://example.org/docs/a.pdf")


def test_decode_body_declared_meta_or_detected_charset() -> None:
    assert decode_body("café".encode("latin-1"), "iso-8859-1") == "café"
    assert decode_body("café".encode(), None) == "café"
    assert decode_body("café".encode(), "no-such-charset") == "café"
    meta = '<meta charset="windows-1251"><p>Привет, мир</p>'
    assert decode_body(meta.encode("cp1251"), None) == meta
    # Declared UTF-8 but mostly valid: the few bad bytes become U+FFFD, the rest is kept.
    page = ("é" * 2000 + "\udcff").encode("utf-8", "surrogateescape")
    assert decode_body(page, "utf-8") == "é" * 2000 + "\ufffd"
    assert decode_body(b"\xff\xfe\x00garbage\x81\x8d", "utf-8")  # never raises


def test_unreachable_url_is_a_record_not_an_exception(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/"
    config = CrawlConfig(timeout_s=2, allow_private_hosts=["127.0.0.1"])
    record = fetch_url(url, config)
    assert record["url"] == url and record["host"] == "127.0.0.1"
    assert record["status"] is None and record["html"] is None and record["bytes"] == 0
    assert record["error"].startswith("connection refused: ")
    assert record["outcome"] == "connection refused"
    assert record["fetch_ms"] >= 0 and record["fetched_at"].endswith("+00:00")
