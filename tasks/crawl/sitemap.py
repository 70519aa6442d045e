"""Seeds from sitemaps: `<urlset>` page URLs, `<sitemapindex>` followed to its sitemaps.

Sitemaps are fetched on the driver through `fetch_url` (same safety and politeness); a
gzipped sitemap is inflated with the same size cap as any body. A sitemap that cannot be
fetched or parsed is reported in the stats, not raised. A Google News sitemap's `<url>`
entries (those with a `news:news` element) become news items (`tasks.crawl.feeds.FeedItem`,
with `news:publication_date` and `news:title`) when the caller collects them, instead of pages.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
import zlib
from datetime import UTC, datetime
from typing import Any

from tasks.config import CrawlConfig
from tasks.crawl.feeds import FeedItem
from tasks.crawl.fetch import ANY_TYPE, fetch_url
from tasks.crawl.links import normalise_url

MAX_SITEMAPS = 50  # sitemap files read per crawl, index entries included


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_sitemap(body: bytes, max_bytes: int) -> tuple[str, list[str]]:
    """('urlset' | 'sitemapindex', its <loc> URLs) of a sitemap document, gzip or plain."""
    if body[:2] == b"\x1f\x8b":
        inflater = zlib.decompressobj(wbits=31)
        body = inflater.decompress(body, max_bytes)
    root = ET.fromstring(body)
    locs = [(el.text or "").strip() for el in root.iter() if _local(el.tag) == "loc"]
    return _local(root.tag), [loc for loc in locs if loc]


def _news_date(value: str) -> str:
    """A W3C datetime (`2020-05-11T09:00:01Z`, `2020-05-11`) as ISO 8601 UTC; "" if unreadable."""
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return ""
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def news_entries(body: bytes, sitemap: str, max_bytes: int) -> list[FeedItem]:
    """The news items of a `<urlset>` (entries with `news:news`), values stripped."""
    if body[:2] == b"\x1f\x8b":
        body = zlib.decompressobj(wbits=31).decompress(body, max_bytes)
    items = []
    for url in ET.fromstring(body):
        if _local(url.tag) != "url":
            continue
        fields = {_local(el.tag): (el.text or "").strip() for el in url.iter()}
        loc = next((el.text or "" for el in url if _local(el.tag) == "loc"), "").strip()
        link = normalise_url(loc) if loc else None
        if "news" not in fields or link is None:
            continue
        date = _news_date(fields.get("publication_date", ""))
        title = " ".join(fields.get("title", "").split())
        items.append(FeedItem(link, link, date, title, sitemap))
    return items


def sitemap_urls(
    sitemaps: list[str],
    config: CrawlConfig,
    deadline: float,
    news: list[FeedItem] | None = None,
) -> tuple[list[str], dict[str, Any]]:
    """The page URLs listed by `sitemaps` (following sitemap indexes), and a summary:
    sitemaps read and the errors of those that failed. With `news` given, a news sitemap's
    entries are appended to it as items and are not page URLs."""
    pending, done = list(sitemaps), set()
    pages: set[str] = set()
    errors: dict[str, str] = {}
    while pending and len(done) < MAX_SITEMAPS:
        url = pending.pop(0)
        if url in done:
            continue
        done.add(url)
        record = fetch_url(url, config, content_types=ANY_TYPE, deadline=deadline)
        if record["error"] is not None:
            errors[url] = record["error"]
            continue
        try:
            kind, locs = parse_sitemap(record["body"], config.max_bytes)
        except (ET.ParseError, zlib.error) as err:
            errors[url] = f"sitemap: not a sitemap: {err}"
            continue
        if kind == "sitemapindex":
            pending.extend(locs)
            continue
        entries = news_entries(record["body"], url, config.max_bytes) if news is not None else []
        if entries:
            news.extend(entries)
        else:
            pages.update(u for u in map(normalise_url, locs) if u is not None)
    return sorted(pages), {"sitemaps_read": len(done), "sitemap_errors": errors}
