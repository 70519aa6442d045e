"""URLs: normalisation (courlan), host keys, and the in-scope links of an HTML page."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin, urlsplit, urlunsplit

from courlan import normalize_url


def normalise_url(url: str) -> str | None:
    """`url` in one canonical spelling (no fragment, lower-case scheme and host, sorted query,
    '/' for an empty path); None if it is not an http(s) URL with a host."""
    parts = urlsplit(urldefrag(url.strip())[0])
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    try:
        parts = urlsplit(normalize_url(parts))
    except ValueError:  # a URL courlan cannot parse (e.g. a bad port)
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


def extract_links(html: str, page_url: str, in_scope: Callable[[str], bool]) -> list[str]:
    """Absolute, normalised http(s) links of `html` that are `in_scope`; sorted, unique."""
    parser = _LinkParser()
    parser.feed(html)
    parser.close()
    base = urljoin(page_url, parser.base) if parser.base else page_url
    links = set()
    for href in parser.hrefs:
        url = normalise_url(urljoin(base, href.strip()))
        if url is not None and in_scope(url):
            links.add(url)
    return sorted(links)
