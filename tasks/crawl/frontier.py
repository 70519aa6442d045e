"""The crawl frontier on the driver: the seen-set and the page limits, level by level."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from tasks.config import CrawlConfig
from tasks.crawl.links import url_host


class Frontier:
    """Admits each URL once: in scope, within `max_pages` and `max_pages_per_host`. A URL
    that is turned away is still seen, with its reason ('scope: ...', 'budget: max_pages')."""

    def __init__(self, config: CrawlConfig, in_scope: Callable[[str], bool]) -> None:
        self.config, self.in_scope = config, in_scope
        self.seen: set[str] = set()
        self.per_host: Counter[str] = Counter()
        self.admitted = 0

    def admit(self, urls: Iterable[str]) -> tuple[list[str], list[tuple[str, str]]]:
        """The new URLs among `urls` (sorted): those to fetch, and (url, reason) for the rest."""
        fetch: list[str] = []
        refused: list[tuple[str, str]] = []
        per_host_limit = self.config.max_pages_per_host
        for url in sorted(set(urls) - self.seen):
            self.seen.add(url)
            host = url_host(url)
            if not self.in_scope(url):
                refused.append((url, "scope: outside crawl.allowed_hosts or URL patterns"))
            elif self.admitted >= self.config.max_pages:
                refused.append((url, "budget: max_pages"))
            elif per_host_limit and self.per_host[host] >= per_host_limit:
                refused.append((url, "budget: max_pages_per_host"))
            else:
                fetch.append(url)
                self.per_host[host] += 1
                self.admitted += 1
        return fetch, refused

    def refuse(self, urls: Iterable[str], reason: str) -> list[tuple[str, str]]:
        """Mark the new URLs among `urls` seen without fetching them; (url, reason) for each."""
        new = sorted(set(urls) - self.seen)
        self.seen.update(new)
        return [(url, reason) for url in new]
