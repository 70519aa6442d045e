"""Link rules: blocked domains and URL words, link-dominated documents, URL-only lines.

A document whose own URL is on a blocked domain (or a subdomain of one) or whose URL contains
a blocked word is dropped. Lines made mostly of URLs are removed; a document whose remaining
text is still more than `max_url_char_fraction` URL characters is dropped as link spam.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from tasks.curate.filters.base import DocumentFilter, FilterResult

URL = re.compile(r"(?:https?://|ftp://|www\.)[^\s<>\"')\]]+", re.IGNORECASE)
_URL_WORD = re.compile(r"[a-z0-9]+")


def url_char_fraction(text: str) -> float:
    """Fraction of the non-space characters of `text` that belong to URLs."""
    total = sum(1 for c in text if not c.isspace())
    if total == 0:
        return 0.0
    return sum(len(m.group()) for m in URL.finditer(text)) / total


class LinkFilter(DocumentFilter):
    """Blocked domains/words in the document URL; URL-heavy lines removed; link spam dropped."""

    name = "links"
    counters = ("url_lines_removed",)

    def __init__(
        self,
        blocked_domains: frozenset[str],
        blocked_url_words: frozenset[str],
        max_url_line_fraction: float = 0.5,
        max_url_char_fraction: float = 0.3,
    ) -> None:
        self.blocked_domains = blocked_domains
        self.blocked_url_words = frozenset(w for w in blocked_url_words if " " not in w)
        self.max_url_line_fraction = max_url_line_fraction
        self.max_url_char_fraction = max_url_char_fraction

    def _blocked_url(self, url: str) -> str | None:
        host = (urlsplit(url).hostname or "").lower()
        parts = host.split(".")
        if any(".".join(parts[i:]) in self.blocked_domains for i in range(len(parts))):
            return "blocked_domain"
        if self.blocked_url_words & set(_URL_WORD.findall(url.lower())):
            return "blocked_url_word"
        return None

    def filter(self, doc: dict[str, Any]) -> FilterResult:
        reason = self._blocked_url(doc.get("url") or "")
        if reason:
            return False, reason
        lines = doc["text"].split("\n")
        kept = [ln for ln in lines if url_char_fraction(ln) <= self.max_url_line_fraction]
        if len(kept) < len(lines):
            self.count(doc, "url_lines_removed", len(lines) - len(kept))
            doc["text"] = "\n".join(kept)
        if not doc["text"].strip():
            return False, "only_urls"
        if url_char_fraction(doc["text"]) > self.max_url_char_fraction:
            return False, "link_spam"
        return True
