"""Link rules: blocked domains and URL words, link-dominated documents, URL-only lines.

A document whose own URL is on a blocked domain (or a subdomain of one) or whose URL contains
a blocked word is dropped. Lines made mostly of URLs are removed; a document whose remaining
text is still more than `curate.links.max_url_char_fraction` URL characters is dropped as link spam.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

from model.config import Checked
from tasks.curate.filters.base import DocumentFilter, FilterResult

URL = re.compile(r"(?:https?://|ftp://|www\.)[^\s<>\"')\]]+", re.IGNORECASE)
_URL_WORD = re.compile(r"[a-z0-9]+")


def url_char_fraction(text: str) -> float:
    """Fraction of the non-space characters of `text` that belong to URLs."""
    total = sum(1 for c in text if not c.isspace())
    if total == 0:
        return 0.0
    return sum(len(m.group()) for m in URL.finditer(text)) / total


@dataclass
class LinksConfig(Checked):
    """`curate.links`: blocked domains and URL words, URL-line removal, link spam. A word-list
    file has one entry per line."""

    section: ClassVar[str] = "curate.links"

    blocked_domains_file: str = ""
    """Domains (and their subdomains) whose pages are dropped; "" = none."""
    url_blockwords_file: str = ""
    """Words that drop a page when they appear in its URL; "" = the bundled C4 bad-words list
    (tasks/curate/wordlists/)."""
    max_url_line_fraction: float = 0.5
    """A line with a larger share of URL characters is removed (in [0, 1])."""
    max_url_char_fraction: float = 0.3
    """A document with a larger share of URL characters is link spam (in [0, 1])."""

    def check(self) -> None:
        self.fraction("max_url_line_fraction", "max_url_char_fraction")


class LinkFilter(DocumentFilter):
    """Blocked domains/words in the document URL; URL-heavy lines removed; link spam dropped."""

    name = "links"
    counters = ("url_lines_removed",)

    def __init__(
        self,
        blocked_domains: frozenset[str],
        blocked_url_words: frozenset[str],
        config: LinksConfig | None = None,
    ) -> None:
        """`blocked_domains` and `blocked_url_words`: the entries of the config's files."""
        self.blocked_domains = blocked_domains
        self.blocked_url_words = frozenset(w for w in blocked_url_words if " " not in w)
        self.config = config or LinksConfig()

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
        kept = [ln for ln in lines if url_char_fraction(ln) <= self.config.max_url_line_fraction]
        if len(kept) < len(lines):
            self.count(doc, "url_lines_removed", len(lines) - len(kept))
            doc["text"] = "\n".join(kept)
        if not doc["text"].strip():
            return False, "only_urls"
        if url_char_fraction(doc["text"]) > self.config.max_url_char_fraction:
            return False, "link_spam"
        return True
