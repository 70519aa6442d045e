"""The length floor: documents with fewer than `min_chars` non-blank characters are dropped."""

from __future__ import annotations

from typing import Any

from tasks.curate.filters.base import DocumentFilter, FilterResult


class LengthFilter(DocumentFilter):
    """Drops documents whose stripped text is shorter than `min_chars`."""

    name = "length"

    def __init__(self, min_chars: int = 100) -> None:
        self.min_chars = min_chars

    def filter(self, doc: dict[str, Any]) -> FilterResult:
        return True if len(doc["text"].strip()) >= self.min_chars else (False, "too_short")
