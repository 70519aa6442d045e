"""The executor side of a crawl level: one Spark partition's URLs, grouped by host.

Hosts of a partition are fetched in parallel by a thread pool (`crawl.host_threads`); one
host's URLs are fetched one after another, and the process-wide host gate keeps the delay
and the concurrency bound per host. A redirect leaving the crawl's scope ends with 'scope:
redirect to ...', its target never contacted; a URL the time budget leaves no room for ends
with 'budget: time'; a 304 answer to a re-crawl keeps the previous crawl's page.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

from tasks.config import CrawlConfig
from tasks.crawl.fetch import HTML_TYPES, fetch_url
from tasks.crawl.links import extract_links, url_host
from tasks.crawl.records import FETCHED_SCHEMA

PAGE_KEYS = FETCHED_SCHEMA.names[:-1]  # every column but `links`
T = TypeVar("T")
R = TypeVar("R")


def skipped_row(url: str, depth: int, reason: str) -> dict[str, Any]:
    """The row of a URL that was not fetched: a dict with `FETCHED_SCHEMA`'s columns."""
    record = dict.fromkeys(PAGE_KEYS)
    record.update(url=url, host=url_host(url), depth=depth, error=reason, bytes=0, fetch_ms=0.0)
    record.update(outcome=reason.split(":", 1)[0], truncated=False)
    record["fetched_at"] = datetime.now(UTC).isoformat(timespec="milliseconds")
    return {**record, "links": []}


def fetch_row(
    row: Any, depth: int, config: CrawlConfig, in_scope: Callable[[str], bool], deadline: float
) -> dict[str, Any]:
    """Fetch one frontier row (url, prev_* columns) into a `FETCHED_SCHEMA` row (a dict);
    redirects are followed only while `in_scope` accepts them, links kept only if `in_scope`."""
    if time.time() >= deadline:
        return skipped_row(row["url"], depth, "budget: time")
    headers = {}
    if row["prev_etag"]:
        headers["If-None-Match"] = row["prev_etag"]
    if row["prev_last_modified"]:
        headers["If-Modified-Since"] = row["prev_last_modified"]
    record = fetch_url(row["url"], config, headers=headers, deadline=deadline, in_scope=in_scope)
    if record["outcome"] == "not_modified" and row["prev_html"] is not None:
        record.update(
            status=row["prev_status"], html=row["prev_html"], content_type=row["prev_content_type"]
        )
        record["etag"] = record["etag"] or row["prev_etag"]
        record["last_modified"] = record["last_modified"] or row["prev_last_modified"]
    record["depth"] = depth
    links = []
    if record["html"] is not None and (record["content_type"] or "text/html") in HTML_TYPES:
        try:
            links = extract_links(record["html"], record["final_url"], in_scope)
        except Exception:  # noqa: BLE001 - markup the parser rejects: the page stays, linkless
            links = []
    return {**{key: record[key] for key in PAGE_KEYS}, "links": links}


def fetch_partition(
    rows: Iterable[Any],
    depth: int,
    config: CrawlConfig,
    in_scope: Callable[[str], bool],
    deadline: float,
) -> Iterator[dict[str, Any]]:
    """Fetch a partition's frontier rows, hosts in parallel, each host's URLs in turn."""
    fetch = partial(fetch_row, depth=depth, config=config, in_scope=in_scope, deadline=deadline)
    yield from by_host_in_threads(rows, lambda row: row["url"], fetch, config.host_threads)


def by_host_in_threads(
    items: Iterable[T], url_of: Callable[[T], str], fetch: Callable[[T], R], threads: int
) -> Iterator[R]:
    """`fetch` of every item, hosts in parallel (up to `threads`), each host's items in turn."""
    by_host: dict[str, list[T]] = defaultdict(list)
    for item in items:
        by_host[url_host(url_of(item))].append(item)
    if not by_host:
        return

    def one_host(host_items: list[T]) -> list[R]:
        return [fetch(item) for item in host_items]

    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(by_host)))) as pool:
        for done in as_completed([pool.submit(one_host, group) for group in by_host.values()]):
            yield from done.result()
