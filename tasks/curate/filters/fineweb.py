"""FineWeb's extra quality rules (Penedo et al. 2024), with datatrove's published thresholds.

Dropped: documents where at most `line_punct_threshold` of lines end in terminal punctuation,
at least `short_line_threshold` of lines are `short_line_length` characters or shorter, the
characters in duplicated lines reach `char_dup_threshold` of the text, or there are more than
`newline_ratio` newlines per word (lists).
"""

from __future__ import annotations

from typing import Any

from tasks.curate.filters.base import DocumentFilter, FilterResult
from tasks.curate.filters.gopher_repetition import duplicates

TERMINAL_PUNCTUATION = (".", "!", "?", '"', "'", "”", "’", "…", "。", "！", "？")


class FineWebQualityFilter(DocumentFilter):
    """Line-punctuation, short-line, duplicated-line and list-ratio rules."""

    name = "fineweb"

    def __init__(
        self,
        line_punct_threshold: float = 0.12,
        short_line_threshold: float = 0.67,
        short_line_length: int = 30,
        char_dup_threshold: float = 0.01,
        newline_ratio: float = 0.3,
    ) -> None:
        self.line_punct_threshold = line_punct_threshold
        self.short_line_threshold = short_line_threshold
        self.short_line_length = short_line_length
        self.char_dup_threshold = char_dup_threshold
        self.newline_ratio = newline_ratio

    def filter(self, doc: dict[str, Any]) -> FilterResult:
        text = doc["text"]
        lines = [ln for ln in text.split("\n") if ln.strip()]
        if not lines:
            return False, "fineweb_empty"
        punct = sum(ln.rstrip().endswith(TERMINAL_PUNCTUATION) for ln in lines) / len(lines)
        if punct <= self.line_punct_threshold:
            return False, "fineweb_line_punct"
        short = sum(len(ln) <= self.short_line_length for ln in lines) / len(lines)
        if short >= self.short_line_threshold:
            return False, "fineweb_short_lines"
        if duplicates(lines)[1] / max(len(text.replace("\n", "")), 1) >= self.char_dup_threshold:
            return False, "fineweb_char_dup"
        if text.count("\n") / max(len(text.split()), 1) > self.newline_ratio:
            return False, "fineweb_list_ratio"
        return True
