"""News feeds: real RSS 2.0 / Atom feeds and a Google News sitemap (tests/data/feeds/, from
the shared corpus) served on 127.0.0.1 with every URL's host mapped onto the test server, their
articles fetched into `<crawl>/news`; a re-crawl takes only new items; bad feeds and items are
reported and the run goes on."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tasks.config import ExtractConfig
from tasks.crawl.crawler import crawl, previous_pages
from tasks.crawl.feeds import feed_items, ingest_news, parse_feed
from tasks.crawl.pydoc_site import write_feed
from tasks.crawl.sitemap import news_entries, sitemap_urls
from tasks.extract.extract import judge_warc

DATA = Path(__file__).resolve().parents[2] / "data" / "feeds"
ARTICLE = (
    "<html><head><title>{path}</title></head><body><article><h1>{path}</h1>"
    "<p>The finance ministry said on Tuesday that the new rules would take effect next month, "
    "after a long consultation with banks, trade groups and consumer organisations.</p>"
    "<p>Officials expect the change to lower costs for small firms that borrow abroad.</p>"
    "</article></body></html>"
)
# Item counts of the shared corpus's feeds (its README, section 7a), parsed by format.
SHARED_ITEMS = {
    "aktuality.rss": 30,
    "livemint.xml": 25,
    "macworld.rss": 30,
    "phpxml.rss": 20,
    "kc0011.rss": 20,
    "scriptingNews.rss": 50,
    "cloudblog.rss": 20,
    "bio.rdf": 30,
    "DaringFireball.atom": 48,
    "russcox.atom": 19,
    "OneFootTsunami.atom": 25,
    "expertopinionent.atom": 43,
}


def localised(body: bytes, base: str) -> bytes:
    """`body` with every http(s) URL's host mapped to `base/<host>`: nothing leaves 127.0.0.1."""
    return re.sub(rb"https?://([A-Za-z0-9.-]+)", lambda m: f"{base}/".encode() + m[1], body)


@dataclass
class NewsSite:
    base: str
    hits: Counter[str]


class _NewsHandler(BaseHTTPRequestHandler):
    hits: Counter[str]

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, body: bytes, ctype: str, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.hits[self.path] += 1
        base = f"http://{self.headers['Host']}"
        if self.path.startswith("/feeds/"):
            self._send(localised((DATA / self.path[7:]).read_bytes(), base), "application/xml")
        elif self.path == "/html-feed.xml":
            self._send(b"<!DOCTYPE html><html><body><p>Moved.</p></body></html>", "text/html")
        elif self.path == "/robots.txt":
            self._send(b"not found", "text/plain", 404)
        else:
            self._send(ARTICLE.format(path=self.path).encode(), "text/html; charset=utf-8")


@pytest.fixture()
def news_site() -> Iterator[NewsSite]:
    """The feeds of tests/data/feeds/ under /feeds/, an HTML page as /html-feed.xml, and an
    article page at every other path; counts hits per path."""
    hits: Counter[str] = Counter()
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (_NewsHandler,), {"hits": hits}))
    thread = threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True)
    thread.start()
    try:
        yield NewsSite(f"http://127.0.0.1:{server.server_address[1]}", hits)
    finally:
        server.shutdown()
        server.server_close()


def _articles(hits: Counter[str]) -> int:
    return sum(
        n for path, n in hits.items() if not path.startswith(("/feeds/", "/robots", "/html-feed"))
    )


def test_feeds_are_fetched_as_news_and_bad_feeds_are_reported(
    spark, news_site: NewsSite, fault_config, tmp_path: Path
) -> None:
    no_link = tmp_path / "no-link.rss"
    no_link.write_text(
        '<rss version="2.0"><channel><title>t</title><item><title>no link</title></item>'
        f"<item><link>{news_site.base}/extra/1.html</link></item></channel></rss>"
    )
    feeds = [
        f"{news_site.base}/feeds/livemint.xml",
        f"{news_site.base}/feeds/OneFootTsunami.atom",
        f"{news_site.base}/html-feed.xml",
        str(no_link),
        str(tmp_path / "missing.rss"),
    ]
    config = fault_config(feeds=feeds)
    stats = ingest_news(spark, config, tmp_path / "crawl" / "news", time.time() + 30)

    assert stats["feeds_read"] == 5
    assert set(stats["feed_errors"]) == {feeds[2], feeds[4]}
    assert "an HTML page, not a feed" in stats["feed_errors"][feeds[2]]
    assert "cannot read" in stats["feed_errors"][feeds[4]]
    assert stats["items"] == 25 + 25 + 1
    assert stats["items_dropped"]["no_link"] == 1
    unique = stats["items"] - stats["items_dropped"].get("duplicate_link", 0)
    assert stats["articles"] == stats["articles_ok"] == unique == _articles(news_site.hits)

    rows = spark.read.parquet(str(tmp_path / "crawl" / "news")).collect()
    assert len(rows) == unique and len({r["id"] for r in rows}) == unique
    assert {r["source"] for r in rows} == {"news"}
    mint = [r for r in rows if r["meta"]["feed"] == feeds[0]]
    assert len(mint) == 25
    assert all(r["meta"]["published_at"].startswith("2019-05-2") for r in mint)
    assert all(r["meta"]["guid"] and r["meta"]["feed_title"] for r in mint)
    atom = [r for r in rows if r["meta"]["feed"] == feeds[1]]
    assert all("/onefoottsunami.com/?p=" in r["meta"]["guid"] for r in atom)

    judged = list(judge_warc([r.asDict() for r in mint[:3]], ExtractConfig()))
    assert [j["drop_reason"] for j in judged] == [None] * 3
    assert {j["source"] for j in judged} == {"news"}
    assert all("finance ministry" in j["text"] and j["meta"]["guid"] for j in judged)


def test_a_recrawl_takes_only_new_items_by_guid_and_date(
    spark, news_site: NewsSite, fault_config, tmp_path: Path
) -> None:
    feed = tmp_path / "livemint.xml"
    real = localised((DATA / "livemint.xml").read_bytes(), news_site.base)
    feed.write_bytes(real)
    first = tmp_path / "first"
    config = fault_config(feeds=[str(feed)])
    stats = crawl(spark, config, first)  # feeds only: no web crawl, no embedded site
    assert stats["news"]["articles"] == 25 and "site" not in stats and "pages_fetched" not in stats
    fetched = _articles(news_site.hits)
    # A later crawl that also has seeds revalidates no pages of this one: it fetched none.
    assert previous_pages(spark, str(first)) is None
    with pytest.raises(ValueError, match="crawl.previous_output: .* does not exist"):
        previous_pages(spark, str(tmp_path / "not-a-crawl"))

    new_items = (
        f"<item><title>new</title><link>{news_site.base}/new.html</link><guid>new-1</guid>"
        "<pubDate>Thu, 30 May 2019 08:00:00 +0530</pubDate></item>"
        f"<item><title>late</title><link>{news_site.base}/late.html</link><guid>late-1</guid>"
        "<pubDate>Wed, 01 May 2019 08:00:00 +0530</pubDate></item>"
    ).encode()
    feed.write_bytes(real.replace(b"</channel>", new_items + b"</channel>"))
    again = fault_config(feeds=[str(feed)], previous_output=str(first))
    stats = ingest_news(spark, again, tmp_path / "second" / "news", time.time() + 30)
    assert stats["items"] == 27
    assert stats["items_dropped"] == {
        "seen: guid": 25,
        "seen: not newer than the previous crawl": 1,
    }
    assert stats["articles"] == 1 and _articles(news_site.hits) == fetched + 1
    (row,) = spark.read.parquet(str(tmp_path / "second" / "news")).collect()
    assert row["meta"]["guid"] == "new-1" and row["meta"]["published_at"] == "2019-05-30T02:30:00Z"


def test_a_google_news_sitemap_gives_news_items_not_pages(news_site: NewsSite, fault_config):
    news: list = []
    url = f"{news_site.base}/feeds/news_sitemap.xml"
    pages, stats = sitemap_urls([url], fault_config(), time.time() + 30, news)
    assert pages == [] and stats == {"sitemaps_read": 1, "sitemap_errors": {}}
    assert len(news) == 6 and {item.feed for item in news} == {url}
    first = news[0]
    path = "/www.nytimes.com/interactive/2020/05/11/magazine/quarantine-insanity.html"
    assert first.link == news_site.base + path
    assert first.published_at == "2020-05-11T09:00:01Z"
    assert (
        first.title == "Quarantine Was Driving Me Crazy — So I Decided to Lose My Mind on Purpose"
    )
    # Without a `news` list (the plain web crawl), its URLs are crawled as pages, as before.
    pages, _ = sitemap_urls([url], fault_config(), time.time() + 30)
    assert len([p for p in pages if "nytimes" in p]) >= 6


def test_the_shared_corpus_feeds_all_parse(shared_corpus: Path) -> None:
    folder = shared_corpus / "feeds"
    for name, count in SHARED_ITEMS.items():
        items, dropped = parse_feed((folder / name).read_bytes(), name)
        assert (len(items), dropped) == (count, Counter()), name
        assert all(item.guid and item.link.startswith("http") for item in items), name
        assert sum(bool(item.published_at) for item in items) == count, name
    # kc0011.rss's `2020/1/10 14:33:00` (feedparser alone reads it as 2020-12-01).
    kc, _ = parse_feed((folder / "kc0011.rss").read_bytes(), "kc0011.rss")
    assert kc[0].published_at == "2020-01-10T14:33:00Z"
    entries = news_entries((folder / "news_sitemap.xml").read_bytes(), "s", 10**6)
    assert [e.published_at[:10] for e in entries][:2] == ["2020-05-11", "2020-05-11"]


def test_the_embedded_site_feed_lists_its_first_pages(tmp_path: Path, fault_config) -> None:
    for name in ("abc", "json", "zlib"):
        (tmp_path / f"{name}.html").write_text(f"<p>{name}</p>")
    path = write_feed(tmp_path, "http://127.0.0.1:8000/", ["abc", "json", "zlib"], 2)
    items, _ = feed_items([str(path)], fault_config(), time.time() + 5)
    assert [(i.link, i.guid) for i in items] == [
        ("http://127.0.0.1:8000/abc.html", "pydoc:abc"),
        ("http://127.0.0.1:8000/json.html", "pydoc:json"),
    ]
    assert all(i.published_at for i in items)
