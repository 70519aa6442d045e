"""Which URLs belong to the crawl: allowed domains, then include and exclude patterns."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tasks.config import CrawlConfig
from tasks.crawl.links import url_host


@dataclass(frozen=True)
class Scope:
    """A URL is in scope when its host is an allowed domain or below one, it matches an
    include pattern (if any are given) and no exclude pattern."""

    domains: frozenset[str]
    include: tuple[re.Pattern[str], ...] = ()
    exclude: tuple[re.Pattern[str], ...] = ()

    def __call__(self, url: str) -> bool:
        host = url_host(url)
        if not any(host == d or host.endswith(f".{d}") for d in self.domains):
            return False
        if self.include and not any(p.search(url) for p in self.include):
            return False
        return not any(p.search(url) for p in self.exclude)


def _compiled(patterns: list[str], key: str) -> tuple[re.Pattern[str], ...]:
    try:
        return tuple(re.compile(p) for p in patterns)
    except re.error as err:
        raise ValueError(f"crawl.{key}: {err.pattern!r} is not a valid regex: {err}") from err


def crawl_scope(config: CrawlConfig, seeds: list[str]) -> Scope:
    """The scope of a crawl: `crawl.allowed_hosts`, or the seeds' hosts when it is empty."""
    domains = frozenset(h.lower().strip(".") for h in config.allowed_hosts)
    return Scope(
        domains or frozenset(url_host(u) for u in seeds),
        _compiled(config.include_patterns, "include_patterns"),
        _compiled(config.exclude_patterns, "exclude_patterns"),
    )
