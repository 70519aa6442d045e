"""News: RSS 2.0 / RSS 1.0 / Atom / JSON Feed items, and Google News sitemap entries, whose
articles are fetched with the crawler's fetcher and written for extraction as `source = "news"`.

A feed (a URL, fetched politely and safely with `fetch_url`, or a local path) is parsed with
feedparser into `FeedItem`s (JSON Feed, which feedparser 6.0 does not read, by
`parse_json_feed`). The new items' articles are fetched in Spark like web pages (by host, hosts
in parallel, one host's in turn), within the crawl's scope and time budget, and written in
`WARC_SCHEMA` to `<crawl>/news`, which the extract step treats like a WARC response: its HTML
is extracted like a crawled page. The item's facts go into `meta`: `published_at` (ISO 8601
UTC, "" when the item has no date), `feed`, `guid` and `feed_title`. A re-crawl
(`crawl.previous_output`) takes only items it has not seen: a guid it already holds, or a date
not after the newest it holds for that feed, is skipped. Nothing here raises for bad input: a
feed that cannot be read (HTML, not a feed, a fetch error) is reported by URL in `feed_errors`,
an item dropped is counted by reason.
"""

from __future__ import annotations

import calendar
import json
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import feedparser
from pyspark import StorageLevel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from tasks.config import CrawlConfig
from tasks.crawl.fetch import ANY_TYPE, fetch_url
from tasks.crawl.links import host_partition, normalise_url, url_host
from tasks.crawl.records import ROW_GROUP_BYTES, document_id
from tasks.crawl.scope import crawl_scope
from tasks.crawl.sources import is_url
from tasks.crawl.warc import WARC_SCHEMA
from tasks.crawl.worker import by_host_in_threads


class FeedItem(NamedTuple):
    """One news item: the article's URL, its guid (the link when the feed gives none), its
    publication date (ISO 8601 UTC, "" if none), its title and the feed (or sitemap) it is from."""

    link: str
    guid: str
    published_at: str
    title: str
    feed: str


class FeedError(ValueError):
    """A feed that yields no items, with the reason ('feed: ...')."""


SLASH_DATE = re.compile(r"(\d{4})/(\d{1,2})/(\d{1,2})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2}))?)?")


def _slash_date(value: str) -> time.struct_time | None:
    """`2020/1/10 14:33:00` (year/month/day, no zone: taken as UTC), which feedparser's own
    handlers misread (as 2020-12-01); None for any other form, left to feedparser."""
    found = SLASH_DATE.fullmatch(value.strip())
    if found is None:
        return None
    parts = [int(p) if p else 0 for p in found.groups()]
    try:
        return datetime(*parts, tzinfo=UTC).utctimetuple()
    except ValueError:
        return None


feedparser.registerDateHandler(_slash_date)  # tried before feedparser's built-in handlers


def _iso(parsed: time.struct_time | None) -> str:
    if not parsed:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(calendar.timegm(parsed)))


def _json_date(value: object) -> str:
    """A JSON Feed RFC 3339 date as ISO 8601 UTC; "" when absent or unreadable."""
    try:
        when = datetime.fromisoformat(str(value).strip())
    except ValueError:
        return ""
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_json_feed(body: bytes, feed: str) -> tuple[list[FeedItem], Counter[str]]:
    """The items of a JSON Feed (1.0 / 1.1) and the items dropped, by reason."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise FeedError(f"feed: not a feed (invalid JSON: {err})") from err
    version = document.get("version", "") if isinstance(document, dict) else ""
    if not str(version).startswith("https://jsonfeed.org/version/"):
        raise FeedError("feed: JSON, but not a JSON Feed (no jsonfeed.org 'version')")
    items: list[FeedItem] = []
    dropped: Counter[str] = Counter()
    for entry in document.get("items") or []:
        if not isinstance(entry, dict):
            dropped["not_an_object"] += 1
            continue
        raw = str(entry.get("url") or entry.get("external_url") or "").strip()
        link = normalise_url(raw) if raw else None
        if link is None:
            dropped["bad_link" if raw else "no_link"] += 1
            continue
        date = _json_date(entry.get("date_published") or entry.get("date_modified") or "")
        guid = str(entry.get("id") or "").strip() or link
        title = " ".join(str(entry.get("title") or "").split())
        items.append(FeedItem(link, guid, date, title, feed))
    return items, dropped


def parse_feed(body: bytes, feed: str) -> tuple[list[FeedItem], Counter[str]]:
    """The items of a feed document (any format feedparser reads, or JSON Feed) and the items
    dropped, by reason. Raise FeedError when the document is no feed (an HTML page, ...)."""
    head = body[:2048].lstrip().lower()
    if head.startswith(b"{"):
        return parse_json_feed(body, feed)
    if head.startswith((b"<!doctype html", b"<html")):
        raise FeedError("feed: an HTML page, not a feed; give the feed's own URL (RSS/Atom/JSON)")
    parsed = feedparser.parse(body)
    if not parsed.version:
        why = parsed.get("bozo_exception") or "no RSS, Atom or JSON Feed root element"
        raise FeedError(f"feed: not a feed ({why})")
    items: list[FeedItem] = []
    dropped: Counter[str] = Counter()
    for entry in parsed.entries:
        link = normalise_url((entry.get("link") or "").strip())
        if link is None:
            dropped["no_link" if not entry.get("link") else "bad_link"] += 1
            continue
        date = entry.get("published_parsed") or entry.get("updated_parsed")
        guid = (entry.get("id") or "").strip() or link
        title = " ".join((entry.get("title") or "").split())
        items.append(FeedItem(link, guid, _iso(date), title, feed))
    return items, dropped


def read_feed(location: str, config: CrawlConfig, deadline: float) -> bytes:
    """The bytes of a feed: a URL through `fetch_url`, a local path from disk (up to
    `crawl.max_bytes`); raise FeedError with the fetch's or the file system's reason."""
    if not is_url(location):
        try:
            with open(Path(location).expanduser(), "rb") as stream:
                return stream.read(config.max_bytes)
        except OSError as err:
            raise FeedError(f"feed: cannot read {location}: {err.strerror or err}") from err
    record = fetch_url(location, config, content_types=ANY_TYPE, deadline=deadline)
    if record["error"] is not None:
        raise FeedError(f"feed: {record['error']}")
    return record["body"]


def feed_items(
    feeds: list[str], config: CrawlConfig, deadline: float
) -> tuple[list[FeedItem], dict[str, Any]]:
    """The items of `feeds`, first one per link, and a summary: feeds read, their errors by
    feed, items found and items dropped by reason."""
    items: dict[str, FeedItem] = {}
    errors: dict[str, str] = {}
    dropped: Counter[str] = Counter()
    found = 0
    for feed in dict.fromkeys(feeds):
        try:
            got, lost = parse_feed(read_feed(feed, config, deadline), feed)
        except FeedError as err:
            errors[feed] = str(err)
            continue
        found += len(got)
        dropped += lost
        for item in got:
            if item.link in items:
                dropped["duplicate_link"] += 1
            else:
                items[item.link] = item
    stats = {"feeds_read": len(dict.fromkeys(feeds)), "feed_errors": errors, "items": found}
    return list(items.values()), {**stats, "items_dropped": dict(dropped)}


def seen_before(spark: SparkSession, previous_output: str) -> tuple[set[str], dict[str, str]]:
    """The guids of a previous crawl's news, and the newest `published_at` per feed."""
    folder = Path(previous_output) / "news" if previous_output else None
    if folder is None or not folder.is_dir():
        return set(), {}
    rows = spark.read.parquet(str(folder)).select(
        F.col("meta")["guid"].alias("guid"),
        F.col("meta")["feed"].alias("feed"),
        F.col("meta")["published_at"].alias("published_at"),
    )
    guids = {r["guid"] for r in rows.select("guid").distinct().collect() if r["guid"]}
    newest = rows.where("published_at != ''").groupBy("feed").agg(F.max("published_at").alias("n"))
    return guids, {r["feed"]: r["n"] for r in newest.collect()}


def new_items(
    items: Iterable[FeedItem], guids: set[str], newest: dict[str, str], dropped: Counter[str]
) -> list[FeedItem]:
    """The items a previous crawl did not take: guid unseen and, when both are dated, published
    after the newest item it took from the same feed; the others counted in `dropped`."""
    kept = []
    for item in items:
        if item.guid in guids:
            dropped["seen: guid"] += 1
        elif item.published_at and item.published_at <= newest.get(item.feed, ""):
            dropped["seen: not newer than the previous crawl"] += 1
        else:
            kept.append(item)
    return kept


def article_row(item: FeedItem, config: CrawlConfig, scope: Any, deadline: float) -> dict:
    """Fetch an item's article into a `WARC_SCHEMA` row with the item's facts in `meta`."""
    meta = {"published_at": item.published_at, "feed": item.feed, "guid": item.guid}
    if item.title:
        meta["feed_title"] = item.title
    record: dict[str, Any]
    if scope(item.link):
        record = fetch_url(item.link, config, deadline=deadline, in_scope=scope)
    else:
        record = dict(status=None, error="scope: outside the crawl", content_type=None, html=None)
        record.update(bytes=0, fetched_at=None, final_url=item.link)
    if record["final_url"] != item.link:
        meta["final_url"] = record["final_url"]
    return {
        "id": document_id(item.link),
        "url": item.link,
        "source": "news",
        "status": record["status"],
        "error": record["error"],
        "content_type": record["content_type"],
        "html": record["html"],
        "text": None,
        "bytes": record["bytes"],
        "fetched_at": record["fetched_at"],
        "meta": meta,
    }


def ingest_news(
    spark: SparkSession,
    config: CrawlConfig,
    out_dir: Path,
    deadline: float,
    extra: list[FeedItem] | None = None,
) -> dict[str, Any]:
    """Write the new items of `crawl.feeds` (and `extra`, e.g. a news sitemap's entries) to
    `out_dir` with their fetched articles; return the counts ({} when there is no news)."""
    if not config.feeds and not extra:
        return {}
    items, stats = feed_items(config.feeds, config, deadline)
    listed = {item.link for item in items}
    items += [item for item in extra or [] if item.link not in listed]
    dropped = Counter(stats["items_dropped"])
    guids, newest = seen_before(spark, config.previous_output)
    items = new_items(items, guids, newest, dropped)
    scope = crawl_scope(config, [item.link for item in items])
    outcomes = fetch_articles(spark, items, config, scope, deadline, out_dir) if items else {}
    return {
        **stats,
        "items_dropped": dict(sorted(dropped.items())),
        "articles": len(items),
        "articles_ok": outcomes.pop("ok", 0),
        "article_errors": dict(sorted(outcomes.items())),
    }


def fetch_articles(
    spark: SparkSession,
    items: list[FeedItem],
    config: CrawlConfig,
    scope: Any,
    deadline: float,
    out_dir: Path,
) -> dict[str, int]:
    """Fetch the items' articles in Spark as the web crawl fetches pages (partitioned by host,
    hosts in parallel threads, one host's articles in turn), append them to `out_dir`; return
    the count per outcome ('ok' or an error's kind)."""
    partitions = max(1, min(config.partitions, len({url_host(i.link) for i in items})))

    def fetch(part: Iterable[FeedItem]) -> Iterator[dict]:
        one = partial(article_row, config=config, scope=scope, deadline=deadline)
        return by_host_in_threads(part, lambda item: item.link, one, config.host_threads)

    fetched = (
        spark.sparkContext.parallelize(items, partitions)
        .map(lambda item: (url_host(item.link), item))
        .partitionBy(partitions, host_partition)
        .values()
        .mapPartitions(fetch)
    )
    # Disk-backed, so the write and the count below never fetch an article a second time.
    frame = spark.createDataFrame(fetched, WARC_SCHEMA).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        writer = frame.write.option("parquet.block.size", ROW_GROUP_BYTES).mode("append")
        writer.parquet(str(out_dir))
        kind = F.when(F.col("error").isNull(), "ok").otherwise(F.split("error", ":")[0])
        counts = frame.groupBy(kind.alias("outcome")).count().collect()
    finally:
        frame.unpersist()
    return {row["outcome"]: row["count"] for row in counts}
