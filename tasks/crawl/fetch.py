"""Fetching one URL and finding its links: the code that runs on Spark executors.

Nothing here raises for a URL that cannot be fetched: the failure becomes the page record's
`error` ('timeout', 'connection refused: ...', 'http 404', ...) so the crawl goes on.
"""

from __future__ import annotations

import socket
import ssl
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin, urlsplit, urlunsplit

from tasks.config import CrawlConfig

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
TEXT_TYPES = HTML_TYPES | {"application/xml", "application/json"}


def normalise_url(url: str) -> str | None:
    """`url` without fragment, scheme and host lower-cased, '/' for an empty path; None if
    it is not http(s)."""
    parts = urlsplit(urldefrag(url.strip())[0])
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return urlunsplit(
        (parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query, "")
    )


def url_host(url: str) -> str:
    """The host name of `url` (lower case, no port)."""
    return urlsplit(url).hostname or ""


def host_partition(host: str) -> int:
    """Partition key for a host; crc32 is the same in every process (unlike `hash`)."""
    return zlib.crc32(host.encode("utf-8"))


class _LinkParser(HTMLParser):
    """Collects `<a>`/`<area>` hrefs and the first `<base href>`."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.base: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if not href:
            return
        if tag in ("a", "area"):
            self.hrefs.append(href)
        elif tag == "base" and self.base is None:
            self.base = href


def extract_links(html: str, page_url: str, allowed_hosts: frozenset[str]) -> list[str]:
    """Absolute http(s) links of `html` to `allowed_hosts`, fragments dropped, sorted, unique."""
    parser = _LinkParser()
    parser.feed(html)
    parser.close()
    base = urljoin(page_url, parser.base) if parser.base else page_url
    links = set()
    for href in parser.hrefs:
        url = normalise_url(urljoin(base, href.strip()))
        if url is not None and url_host(url) in allowed_hosts:
            links.add(url)
    return sorted(links)


def describe_error(err: BaseException) -> str:
    """A short error string whose part before ':' is its kind ('timeout', 'http 404', ...)."""
    if isinstance(err, urllib.error.HTTPError):
        return f"http {err.code}"
    reason = err.reason if isinstance(err, urllib.error.URLError) else err
    if isinstance(reason, TimeoutError):
        return "timeout"
    if isinstance(reason, ConnectionRefusedError):
        return f"connection refused: {reason}"
    if isinstance(reason, socket.gaierror):
        return f"dns: {reason}"
    if isinstance(reason, ssl.SSLError):
        return f"tls: {reason}"
    if isinstance(reason, ConnectionError):
        return f"connection error: {reason}"
    return f"network: {type(reason).__name__}: {reason}"


def decode_body(body: bytes, charset: str | None) -> str:
    """`body` decoded with the declared charset, else UTF-8; bad bytes become U+FFFD."""
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:  # an unknown charset name
        return body.decode("utf-8", errors="replace")


def fetch_page(url: str, depth: int, config: CrawlConfig, allowed_hosts: frozenset[str]) -> tuple:
    """Fetch `url` once; return a row in `FETCHED_SCHEMA` order (page columns, then links)."""
    fetched_at = datetime.now(UTC).isoformat(timespec="milliseconds")
    request = urllib.request.Request(url, headers={"User-Agent": config.user_agent})
    status = error = content_type = html = None
    body, links = b"", []
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=config.timeout_s) as response:
            status = response.status
            if response.headers.get("Content-Type"):
                content_type = response.headers.get_content_type()
            body = response.read(config.max_bytes)
            final_url = response.geturl()
            charset = response.headers.get_content_charset()
        if content_type is None or content_type.startswith("text/") or content_type in TEXT_TYPES:
            html = decode_body(body, charset)
        if html is not None and (content_type is None or content_type in HTML_TYPES):
            links = extract_links(html, final_url, allowed_hosts)
    except urllib.error.HTTPError as err:
        status, error = err.code, describe_error(err)
        if err.headers is not None and err.headers.get("Content-Type"):
            content_type = err.headers.get_content_type()
    except Exception as err:  # every failure is recorded, never raised
        error = describe_error(err)
    fetch_ms = (time.perf_counter() - started) * 1000.0
    page = (url, url_host(url), depth, status, error, content_type, html, len(body))
    return (*page, round(fetch_ms, 3), fetched_at, links)


def fetch_partition(
    urls: Iterable[tuple[str, int]], config: CrawlConfig, allowed_hosts: frozenset[str]
) -> Iterator[tuple]:
    """Fetch one partition's (url, depth) pairs in turn: one host's URLs share a partition,
    so a host sees one request at a time."""
    for url, depth in urls:
        yield fetch_page(url, depth, config, allowed_hosts)
