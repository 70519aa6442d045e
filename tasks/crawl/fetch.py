"""Fetching one URL safely and politely: `fetch_url`, the crawler's and the other sources' fetcher.

Per URL: safety check of every hop (scheme, resolved address), robots.txt and the host gate
(when `polite`), bounded retries with exponential backoff on timeouts, resets, 429 (honouring
Retry-After, capped) and 5xx, redirects followed by hand with loop detection, each redirect
target checked against the crawl's scope (when `in_scope` is given: allowed hosts, include
and exclude patterns) before it is resolved or contacted, the body streamed and cut at
`max_bytes`, a content-type allow-list, and charset detection. Nothing raises: a failure
becomes the record's `error` ('timeout', 'http 404', 'robots: disallowed', 'scope: ...',
...), whose part before ':' is the outcome counted in the crawl's stats.
"""

from __future__ import annotations

import email.utils
import http.client
import ssl
import time
import zlib
from collections.abc import Callable, Collection
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from tasks.config import CrawlConfig
from tasks.crawl.charset import decode_body
from tasks.crawl.links import host_partition, normalise_url, url_host
from tasks.crawl.politeness import GATE
from tasks.crawl.robots import ROBOTS, ROBOTS_MAX_BYTES
from tasks.crawl.safety import UnsafeURLError, checked_address
from tasks.crawl.transfer import Reply, exchange

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
__all__ = ["ANY_TYPE", "HTML_TYPES", "decode_body", "fetch_url", "host_partition", "url_host"]
ANY_TYPE = ("*",)  # `content_types` that accepts every type (robots.txt, dumps, WARC files)
KNOWN_KINDS = ("dns: ", "budget: ", "content encoding: ")  # messages that already say their kind
REDIRECTS = frozenset({301, 302, 303, 307, 308})
RETRIED = (TimeoutError, ConnectionResetError, ConnectionAbortedError, http.client.IncompleteRead)


@dataclass
class _Request:
    """What every attempt of one fetch shares; `deadline` is in time.monotonic seconds."""

    headers: dict[str, str]
    want_body: Callable[[int, http.client.HTTPMessage], bool]
    max_bytes: int
    polite: bool
    deadline: float


class FetchError(Exception):
    """A failure with its record text already chosen ('redirect loop', ...)."""


def describe_error(err: BaseException) -> str:
    """A short error string whose part before ':' is its kind ('timeout', 'dns', ...)."""
    if isinstance(err, ssl.SSLError | ssl.CertificateError):
        return f"tls: {err}"
    if isinstance(err, FetchError | UnsafeURLError) or str(err).startswith(KNOWN_KINDS):
        return str(err)
    if isinstance(err, TimeoutError):
        return "timeout"
    if isinstance(err, ConnectionRefusedError):
        return f"connection refused: {err}"
    if isinstance(err, ConnectionError | http.client.HTTPException):
        return f"connection error: {type(err).__name__}: {err}"
    if isinstance(err, zlib.error):
        return f"content encoding: {err}"
    return f"network: {type(err).__name__}: {err}"


def retry_wait(reply: Reply | None, attempt: int, config: CrawlConfig) -> float:
    """Seconds before the next attempt: Retry-After (seconds or a date, capped), else backoff."""
    wait = config.backoff_s * 2**attempt
    value = reply.headers.get("Retry-After", "").strip() if reply is not None else ""
    if value.isdigit():
        wait = float(value)
    elif value:
        try:
            wait = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):  # a malformed date: keep the backoff
            pass
    return min(max(0.0, wait), config.max_retry_after_s)


def _attempts(url: str, config: CrawlConfig, request: _Request, delay: float) -> Reply:
    """One hop with retries; returns the last reply (perhaps a 5xx) or raises the last error."""
    parts = urlsplit(url)
    address = checked_address(parts, config.allow_private_hosts)
    timeouts = (config.connect_timeout_s, config.read_timeout_s)
    for attempt in range(config.max_retries + 1):
        reply, error = None, None
        gate = GATE.slot(parts.hostname or "", config.host_concurrency, delay, request.deadline)
        try:
            with gate if request.polite else nullcontext():
                total = min(config.timeout_s, request.deadline - time.monotonic())
                if total <= 0:
                    raise TimeoutError("budget: time")
                reply = exchange(
                    parts,
                    address,
                    request.headers,
                    (*timeouts, total),
                    request.want_body,
                    request.max_bytes,
                )
            if reply.status != 429 and reply.status < 500:
                return reply
        except RETRIED as err:
            if str(err).startswith("budget: "):
                raise
            error = err
        wait = retry_wait(reply, attempt, config)
        if attempt == config.max_retries or time.monotonic() + wait >= request.deadline:
            break
        time.sleep(wait)
    if reply is not None:
        return reply
    raise error


def robots_delay(url: str, config: CrawlConfig, deadline: float | None) -> float:
    """Seconds to keep between requests to `url`'s host; raise FetchError if robots.txt
    (fetched once per origin) refuses `url`."""
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
    rules = ROBOTS.rules(
        origin,
        config,
        lambda robots_url: fetch_url(
            robots_url,
            config,
            content_types=ANY_TYPE,
            max_bytes=ROBOTS_MAX_BYTES,
            polite=False,
            deadline=deadline,
        ),
        crawl=deadline,  # one fetch per origin and crawl: a reused worker asks again next crawl
    )
    if (refusal := rules.verdict(url, config.user_agent)) is not None:
        raise FetchError(refusal)
    return max(config.host_delay_s, min(rules.delay(config.user_agent), config.max_crawl_delay_s))


def _follow(
    url: str,
    config: CrawlConfig,
    request: _Request,
    deadline: float | None,
    in_scope: Callable[[str], bool] | None,
) -> tuple:
    """(final reply, final URL) after following redirects, each hop checked anew: a redirect
    target against `in_scope` (if given) before robots.txt, resolution or any connection."""
    hop, seen = normalise_url(url) or url, set()
    for _ in range(config.max_redirects + 1):
        seen.add(hop)
        delay = robots_delay(hop, config, deadline) if request.polite else 0.0
        reply = _attempts(hop, config, request, delay)
        location = reply.headers.get("Location")
        if reply.status not in REDIRECTS or not location:
            return reply, hop
        hop = normalise_url(urljoin(hop, location))
        if hop is None:
            raise FetchError(f"redirect: to a non-http(s) location {location[:200]!r}")
        if in_scope is not None and not in_scope(hop):
            raise FetchError(
                f"scope: redirect to {hop} is outside crawl.allowed_hosts or URL patterns"
            )
        if hop in seen:
            raise FetchError(f"redirect loop: back to {hop}")
    raise FetchError(f"redirect: more than {config.max_redirects} redirects")


def fetch_url(
    url: str,
    config: CrawlConfig,
    *,
    headers: dict[str, str] | None = None,
    content_types: Collection[str] | None = None,
    max_bytes: int | None = None,
    polite: bool = True,
    deadline: float | None = None,
    in_scope: Callable[[str], bool] | None = None,
) -> dict[str, Any]:
    """Fetch `url` under `config`'s safety, politeness, retry and size limits; return its record.

    Keys: url, host, status, error, outcome, content_type, html (decoded text, for text
    types), body (decoded bytes), bytes, truncated, final_url, etag, last_modified, fetch_ms,
    fetched_at. `content_types` defaults to `crawl.content_types` (`ANY_TYPE` takes all),
    `max_bytes` to `crawl.max_bytes`; `deadline` is a `time.time()` the fetch cannot pass.
    `in_scope` (the crawl's `Scope`; None: no check) must accept every redirect target, else
    the fetch ends with 'scope: redirect to ...' before that target is contacted.
    """
    started = time.perf_counter()
    record: dict[str, Any] = dict(
        url=url,
        host=url_host(url),
        status=None,
        error=None,
        content_type=None,
        html=None,
        body=b"",
        bytes=0,
        truncated=False,
        final_url=url,
        etag=None,
        last_modified=None,
        fetched_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
    )
    types = frozenset(config.content_types if content_types is None else content_types)

    def allowed(msg: http.client.HTTPMessage) -> bool:
        return "*" in types or "Content-Type" not in msg or msg.get_content_type() in types

    budget = config.time_budget_s if deadline is None else deadline - time.time()
    request = _Request(
        headers=headers or {},
        want_body=lambda status, msg: 200 <= status < 300 and allowed(msg),
        max_bytes=config.max_bytes if max_bytes is None else max_bytes,
        polite=polite,
        deadline=time.monotonic() + budget,
    )
    try:
        reply, hop = _follow(url, config, request, deadline, in_scope)
        record.update(
            final_url=hop,
            status=reply.status,
            etag=reply.headers.get("ETag"),
            last_modified=reply.headers.get("Last-Modified"),
        )
        if "Content-Type" in reply.headers:
            record["content_type"] = reply.headers.get_content_type()
        if not 200 <= reply.status < 300 and reply.status != 304:
            raise FetchError(f"http {reply.status}")
        if not allowed(reply.headers):
            raise FetchError(f"content type: {record['content_type']} is not allowed")
        record.update(body=reply.body, bytes=len(reply.body), truncated=reply.truncated)
        ctype = record["content_type"]
        if ctype is None or ctype.startswith("text/") or ctype in HTML_TYPES:
            record["html"] = decode_body(reply.body, reply.headers.get_content_charset())
    except Exception as err:  # every failure is recorded, never raised
        record["error"] = describe_error(err)
    record["outcome"] = outcome(record["status"], record["error"])
    record["fetch_ms"] = round((time.perf_counter() - started) * 1000.0, 3)
    return record


def outcome(status: int | None, error: str | None) -> str:
    """The stats key of a fetch: 'ok', 'not_modified', or the error's kind ('http 404', ...)."""
    if error is not None:
        return error.split(":", 1)[0]
    return "not_modified" if status == 304 else "ok"
