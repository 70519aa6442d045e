"""FineWeb's extra quality rules (Penedo et al. 2024), with datatrove's published thresholds.

Dropped: documents where at most `line_punct_threshold` of lines end in terminal punctuation,
at least `short_line_threshold` of lines are `short_line_length` characters or shorter, the
characters in duplicated lines reach `char_dup_threshold` of the text, or there are more than
`newline_ratio` newlines per word (lists). Hard-wrapped text (books) is judged by paragraph
(`logical_lines`), and words are counted with `split_words`; the full stops of other scripts
(`SCRIPT_STOPS`) end a line, as does a Thai, Lao or Khmer letter (no sign ends a sentence there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from model.config import Checked
from tasks.curate.filters.base import (
    SCRIPT_STOPS,
    DocumentFilter,
    FilterResult,
    logical_lines,
    split_words,
    unpunctuated_script_end,
)
from tasks.curate.filters.gopher_repetition import duplicates

TERMINAL_PUNCTUATION = (".", "!", "?", '"', "'", "”", "’", "…", "。", "！", "？", *SCRIPT_STOPS)


@dataclass
class FineWebConfig(Checked):
    """`curate.fineweb`: FineWeb's extra thresholds (Penedo et al. 2024)."""

    section: ClassVar[str] = "curate.fineweb"

    line_punct_threshold: float = 0.12
    """At most this share of lines ending in terminal punctuation: dropped (in [0, 1])."""
    short_line_threshold: float = 0.67
    """At least this share of short lines: dropped (in [0, 1])."""
    short_line_length: int = 30
    """A line of at most this many characters is short (>= 0)."""
    char_dup_threshold: float = 0.01
    """At least this share of characters in duplicated lines: dropped (in [0, 1])."""
    newline_ratio: float = 0.3
    """More newlines per word (a list): dropped (>= 0)."""

    def check(self) -> None:
        self.fraction("line_punct_threshold", "short_line_threshold", "char_dup_threshold")
        self.at_least(0, "short_line_length", "newline_ratio")


class FineWebQualityFilter(DocumentFilter):
    """Line-punctuation, short-line, duplicated-line and list-ratio rules."""

    name = "fineweb"

    def __init__(self, config: FineWebConfig | None = None) -> None:
        self.config = config or FineWebConfig()

    def filter(self, doc: dict[str, Any]) -> FilterResult:
        cfg = self.config
        text = doc["text"]
        logical, separator = logical_lines(text)
        lines = [ln for ln in logical if ln.strip()]
        if not lines:
            return False, "fineweb_empty"
        punct = sum(
            ln.rstrip().endswith(TERMINAL_PUNCTUATION) or unpunctuated_script_end(ln)
            for ln in lines
        ) / len(lines)
        if punct <= cfg.line_punct_threshold:
            return False, "fineweb_line_punct"
        short = sum(len(ln) <= cfg.short_line_length for ln in lines) / len(lines)
        if short >= cfg.short_line_threshold:
            return False, "fineweb_short_lines"
        if duplicates(lines)[1] / max(len(text.replace("\n", "")), 1) >= cfg.char_dup_threshold:
            return False, "fineweb_char_dup"
        breaks = text.count("\n") if separator == "\n" else len(lines)  # wrapped: per paragraph
        if breaks / max(len(split_words(text)), 1) > cfg.newline_ratio:
            return False, "fineweb_list_ratio"
        return True
