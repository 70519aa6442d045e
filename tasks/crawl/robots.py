"""robots.txt per origin, fetched once per process or crawl through the safe fetcher, cached.

RFC 9309: a 4xx answer (no robots.txt) allows everything; a 5xx answer or a network failure
disallows everything for the origin, and its pages carry that reason instead of being fetched.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.robotparser
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tasks.config import CrawlConfig

ROBOTS_MAX_BYTES = 500_000  # RFC 9309 asks crawlers to parse at least 500 KiB
ROBOTS_TTL_S = 3600.0
ROBOTS_FAILURE_TTL_S = 60.0  # an unreachable origin is retried after this


@dataclass
class RobotsRules:
    """The rules of one origin, or why it is refused (`refusal`, e.g. 'robots: http 503')."""

    parser: urllib.robotparser.RobotFileParser
    refusal: str | None = None

    def verdict(self, url: str, agent: str) -> str | None:
        """None if `agent` may fetch `url`, else the reason it may not."""
        if self.refusal is not None:
            return self.refusal
        return None if self.parser.can_fetch(agent, url) else "robots: disallowed"

    def delay(self, agent: str) -> float:
        """Seconds the origin asks between requests (Crawl-delay or Request-rate), else 0."""
        delay = (self.parser.crawl_delay(agent) or 0) / 1000  # parsed in ms, see `_in_ms`
        rate = self.parser.request_rate(agent)
        if rate is not None and rate.requests > 0:
            delay = max(delay or 0, rate.seconds / rate.requests)
        return float(delay or 0)


CRAWL_DELAY = re.compile(r"^\s*crawl-delay\s*:\s*([0-9]*\.?[0-9]+)\s*(#.*)?$", re.I)


def _in_ms(line: str) -> str:
    """A Crawl-delay line in milliseconds: robotparser reads whole numbers only, and
    fractional delays ('Crawl-delay: 0.5') are common."""
    match = CRAWL_DELAY.match(line)
    return f"Crawl-delay: {round(float(match.group(1)) * 1000)}" if match else line


def parse_robots(record: dict[str, Any]) -> RobotsRules:
    """Rules from the fetch record of `/robots.txt` (see `fetch.fetch_url`)."""
    parser = urllib.robotparser.RobotFileParser()
    status = record["status"]
    if status is not None and 200 <= status < 300 and record["error"] is None:
        parser.parse(_in_ms(line) for line in (record["html"] or "").splitlines())
        return RobotsRules(parser)
    if status is not None and 400 <= status < 500:
        parser.allow_all = True
        return RobotsRules(parser)
    parser.disallow_all = True
    reason = record["error"] or f"http {status}"
    return RobotsRules(parser, reason if status is None else f"robots: {reason}")


class RobotsCache:
    """Rules per (origin, user agent, private-host allow-list, crawl), each fetched once per
    `ROBOTS_TTL_S` (`ROBOTS_FAILURE_TTL_S` when the origin could not be reached).

    `crawl` (the crawl's deadline, a `time.time()`) keeps one crawl's rules from another's:
    a Spark Python worker reused by the next crawl fetches robots.txt anew, and the rules of
    a crawl whose deadline has passed are dropped. None shares the rules within the process.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards both dicts
        self._origin_locks: dict[tuple, threading.Lock] = {}
        self._rules: dict[tuple, tuple[float, RobotsRules]] = {}

    def rules(
        self,
        origin: str,
        config: CrawlConfig,
        fetch: Callable[[str], dict[str, Any]],
        crawl: float | None = None,
    ) -> RobotsRules:
        """The rules of `origin` ('https://host:port'); `fetch` gets its robots.txt URL."""
        key = (origin, config.user_agent, tuple(sorted(config.allow_private_hosts)), crawl)
        with self._lock:
            origin_lock = self._origin_locks.setdefault(key, threading.Lock())
        with origin_lock:
            with self._lock:
                cached = self._rules.get(key)
            if cached is None or cached[0] < time.monotonic():
                record = fetch(f"{origin}/robots.txt")
                ttl = ROBOTS_TTL_S if record["status"] is not None else ROBOTS_FAILURE_TTL_S
                cached = (time.monotonic() + ttl, parse_robots(record))
                with self._lock:
                    self._drop_stale()
                    self._rules[key] = cached
            return cached[1]

    def clear(self) -> None:
        """Forget every origin's rules (the next request fetches robots.txt again)."""
        with self._lock:
            self._rules.clear()
            self._origin_locks.clear()

    def _drop_stale(self) -> None:
        """Drop expired rules and those of crawls past their deadline; `_lock` is held."""
        now, wall = time.monotonic(), time.time()
        for key in [
            key
            for key, (expires, _) in self._rules.items()
            if expires < now or (key[3] is not None and key[3] < wall)
        ]:
            del self._rules[key]
            self._origin_locks.pop(key, None)


ROBOTS = RobotsCache()
