"""A remote file read as a stream, as safely and politely as the crawler fetches a page.

Every hop (redirects followed by hand, loops refused) is checked by `safety.checked_address`,
asked of robots.txt and admitted by the host gate (`crawl.host_concurrency`, the robots or
`crawl.host_delay_s` gap between request starts, the slot held while the body is read);
timeouts, 5xx and 429 are retried before the body starts. The body is handed out as a
`transfer.BodyStream`: each read bounded by `crawl.read_timeout_s`, the whole file by
`crawl.time_budget_s`, its size by `crawl.max_file_bytes` (a cap on what is read, not memory).
"""

from __future__ import annotations

import http.client
import io
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from urllib.parse import urljoin, urlsplit

from tasks.config import CrawlConfig
from tasks.crawl.fetch import (
    REDIRECTS,
    RETRIED,
    FetchError,
    describe_error,
    retry_wait,
    robots_delay,
)
from tasks.crawl.links import normalise_url
from tasks.crawl.politeness import GATE
from tasks.crawl.safety import checked_address
from tasks.crawl.transfer import BodyStream, Deadline, Reply, opened

Opened = tuple[http.client.HTTPResponse, Deadline]


def _open_hop(url: str, config: CrawlConfig, deadline: float, stack: ExitStack) -> Opened:
    """The response to GET `url` (entered on `stack`), after retries; a last 5xx is returned."""
    parts = urlsplit(url)
    address = checked_address(parts, config.allow_private_hosts)
    delay = robots_delay(url, config, None)
    headers = {"User-Agent": config.user_agent, "Accept-Encoding": "identity"}
    error: BaseException | None = None
    for attempt in range(config.max_retries + 1):
        stack.close()
        response = None
        try:
            slot = GATE.slot(parts.hostname or "", config.host_concurrency, delay, deadline)
            stack.enter_context(slot)
            left = deadline - time.monotonic()
            timeouts = (config.connect_timeout_s, config.read_timeout_s, left)
            response, guard = stack.enter_context(opened(parts, address, headers, timeouts))
            if response.status != 429 and response.status < 500:
                return response, guard
        except RETRIED as err:
            error = err
        reply = None if response is None else Reply(response.status, response.headers, b"", False)
        wait = retry_wait(reply, attempt, config)
        if attempt == config.max_retries or time.monotonic() + wait >= deadline:
            break
        time.sleep(wait)
    if response is not None:
        return response, guard
    raise error


def _open_url(url: str, config: CrawlConfig, stack: ExitStack) -> Opened:
    """The final 2xx response to `url` after redirects; raise naming the failure."""
    deadline = time.monotonic() + config.time_budget_s
    hop, seen = normalise_url(url) or url, set()
    for _ in range(config.max_redirects + 1):
        seen.add(hop)
        response, guard = _open_hop(hop, config, deadline, stack)
        location = response.headers.get("Location")
        if response.status in REDIRECTS and location:
            hop = normalise_url(urljoin(hop, location))
            if hop is None or hop in seen:
                raise FetchError(f"redirect: to {location[:200]!r} (a loop or not http(s))")
            continue
        if not 200 <= response.status < 300:
            raise FetchError(f"http {response.status}")
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise FetchError(f"content encoding: {encoding!r} on a file asked for as identity")
        return response, guard
    raise FetchError(f"redirect: more than {config.max_redirects} redirects")


@contextmanager
def stream_url(url: str, config: CrawlConfig) -> Iterator[io.BufferedReader]:
    """A buffered binary stream over `url`'s body, read as it is consumed. A failure to open
    it raises OSError('<url>: <kind>: ...'); a read past a limit raises OSError too."""
    with ExitStack() as stack:
        try:
            response, guard = _open_url(url, config, stack)
        except Exception as err:
            raise OSError(f"{url}: {describe_error(err)}") from err
        body = BodyStream(response, guard, config.max_file_bytes, "crawl.max_file_bytes")
        yield io.BufferedReader(body, buffer_size=65536)
