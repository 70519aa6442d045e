"""Gopher's quality rules (Rae et al. 2021, MassiveText), with the published thresholds.

Words are whitespace-separated tokens. A document is dropped when it has too few or too many
non-symbol words, an odd mean word length, too many '#' or ellipses per word, too many
bullet lines or lines ending in an ellipsis, too few words with a letter, or fewer than two
of the stop words "the be to of and that have with".
"""

from __future__ import annotations

import string
from typing import Any

from tasks.curate.filters.base import DocumentFilter, FilterResult

STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
SYMBOLS = frozenset(string.punctuation) | {"…", "“", "”", "‘", "’", "—", "–", "•"}


class GopherQualityFilter(DocumentFilter):
    """Document-level Gopher quality heuristics; never rewrites the text."""

    name = "gopher_quality"

    def __init__(
        self,
        min_words: int = 50,
        max_words: int = 100_000,
        min_avg_word_length: float = 3.0,
        max_avg_word_length: float = 10.0,
        max_symbol_word_ratio: float = 0.1,
        max_bullet_lines_ratio: float = 0.9,
        max_ellipsis_lines_ratio: float = 0.3,
        min_alpha_words_ratio: float = 0.8,
        min_stop_words: int = 2,
    ) -> None:
        self.min_words = min_words
        self.max_words = max_words
        self.min_avg_word_length = min_avg_word_length
        self.max_avg_word_length = max_avg_word_length
        self.max_symbol_word_ratio = max_symbol_word_ratio
        self.max_bullet_lines_ratio = max_bullet_lines_ratio
        self.max_ellipsis_lines_ratio = max_ellipsis_lines_ratio
        self.min_alpha_words_ratio = min_alpha_words_ratio
        self.min_stop_words = min_stop_words

    def filter(self, doc: dict[str, Any]) -> FilterResult:
        text = doc["text"]
        tokens = text.split()
        content = [w for w in tokens if any(c not in SYMBOLS for c in w)]
        if len(content) < self.min_words:
            return False, "gopher_too_few_words"
        if len(content) > self.max_words:
            return False, "gopher_too_many_words"
        mean_length = sum(len(w) for w in content) / len(content)
        if mean_length < self.min_avg_word_length:
            return False, "gopher_short_words"
        if mean_length > self.max_avg_word_length:
            return False, "gopher_long_words"
        if text.count("#") / len(tokens) > self.max_symbol_word_ratio:
            return False, "gopher_hashes"
        if (text.count("...") + text.count("…")) / len(tokens) > self.max_symbol_word_ratio:
            return False, "gopher_ellipses"
        lines = [ln.strip() for ln in text.splitlines()] or [""]
        bullets = sum(ln.startswith(("•", "-", "*")) for ln in lines)
        if bullets / len(lines) > self.max_bullet_lines_ratio:
            return False, "gopher_bullet_lines"
        ellipsis_ends = sum(ln.endswith(("...", "…")) for ln in lines)
        if ellipsis_ends / len(lines) > self.max_ellipsis_lines_ratio:
            return False, "gopher_ellipsis_lines"
        alpha = sum(any(c.isalpha() for c in w) for w in tokens)
        if alpha / len(tokens) < self.min_alpha_words_ratio:
            return False, "gopher_non_alpha_words"
        if sum(w.lower() in STOP_WORDS for w in tokens) < self.min_stop_words:
            return False, "gopher_few_stop_words"
        return True
