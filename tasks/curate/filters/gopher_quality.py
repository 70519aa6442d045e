"""Gopher's quality rules (Rae et al. 2021, MassiveText), with the published thresholds.

Words are whitespace-separated tokens. A document is dropped when it has too few or too many
non-symbol words, an odd mean word length, too many '#' or ellipses per word, too many
bullet lines or lines ending in an ellipsis, too few words with a letter, or fewer than two
of the stop words "the be to of and that have with".

The stop words are English: that rule applies only to `stop_words_langs` (default English;
a document of unknown language gets it). Words are counted with `split_words`, so a Chinese
or Japanese text has as many words as characters, and the mean word length rules do not
apply to a text mostly in such a script. The share of words with a letter is of the words,
as the paper has it: tokens made only of symbols (a dash, a bar) are not words (datatrove
counts them).
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Any, ClassVar

from model.config import Checked
from tasks.curate.filters.base import (
    DocumentFilter,
    FilterResult,
    for_language,
    spaceless_share,
    split_words,
)

STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
SYMBOLS = frozenset(string.punctuation) | {"…", "“", "”", "‘", "’", "—", "–", "•"}


@dataclass
class GopherQualityConfig(Checked):
    """`curate.gopher_quality`: Gopher's document-level thresholds (Rae et al. 2021)."""

    section: ClassVar[str] = "curate.gopher_quality"

    min_words: int = 50
    """Fewer non-symbol words: dropped (>= 0)."""
    max_words: int = 100_000
    """More non-symbol words: dropped (>= min_words)."""
    min_avg_word_length: float = 3.0
    """A shorter mean word length: dropped (>= 0)."""
    max_avg_word_length: float = 10.0
    """A longer mean word length: dropped (>= min_avg_word_length)."""
    max_symbol_word_ratio: float = 0.1
    """More '#' (or more ellipses) per word: dropped (>= 0)."""
    max_bullet_lines_ratio: float = 0.9
    """A larger share of lines starting with a bullet: dropped (in [0, 1])."""
    max_ellipsis_lines_ratio: float = 0.3
    """A larger share of lines ending in an ellipsis: dropped (in [0, 1])."""
    min_alpha_words_ratio: float = 0.8
    """A smaller share of words with a letter: dropped (in [0, 1])."""
    min_stop_words: int = 2
    """Fewer of the stop words: dropped (>= 0)."""
    stop_words_langs: list[str] = field(default_factory=lambda: ["en"])
    """Languages (ISO 639-1, the extract step's `lang`) the English stop-word rule applies to;
    empty = every language."""

    def check(self) -> None:
        self.at_least(0, "min_words", "min_avg_word_length", "max_symbol_word_ratio")
        self.at_least(0, "min_stop_words")
        self.require(
            self.max_words >= self.min_words,
            "max_words",
            f"max_words must be >= curate.gopher_quality.min_words = {self.min_words}",
            "min_words",
        )
        self.require(
            self.max_avg_word_length >= self.min_avg_word_length,
            "max_avg_word_length",
            "max_avg_word_length must be >= curate.gopher_quality.min_avg_word_length = "
            f"{self.min_avg_word_length}",
            "min_avg_word_length",
        )
        self.fraction("max_bullet_lines_ratio", "max_ellipsis_lines_ratio", "min_alpha_words_ratio")


class GopherQualityFilter(DocumentFilter):
    """Document-level Gopher quality heuristics; never rewrites the text."""

    name = "gopher_quality"

    def __init__(self, config: GopherQualityConfig | None = None) -> None:
        self.config = config or GopherQualityConfig()

    def filter(self, doc: dict[str, Any]) -> FilterResult:
        cfg = self.config
        text = doc["text"]
        tokens = split_words(text)
        content = [w for w in tokens if any(c not in SYMBOLS for c in w)]
        if len(content) < cfg.min_words:
            return False, "gopher_too_few_words"
        if len(content) > cfg.max_words:
            return False, "gopher_too_many_words"
        mean_length = sum(len(w) for w in content) / len(content)
        spaced = spaceless_share(content) < 0.5
        if spaced and mean_length < cfg.min_avg_word_length:
            return False, "gopher_short_words"
        if spaced and mean_length > cfg.max_avg_word_length:
            return False, "gopher_long_words"
        if text.count("#") / len(tokens) > cfg.max_symbol_word_ratio:
            return False, "gopher_hashes"
        if (text.count("...") + text.count("…")) / len(tokens) > cfg.max_symbol_word_ratio:
            return False, "gopher_ellipses"
        lines = [ln.strip() for ln in text.splitlines()] or [""]
        bullets = sum(ln.startswith(("•", "-", "*")) for ln in lines)
        if bullets / len(lines) > cfg.max_bullet_lines_ratio:
            return False, "gopher_bullet_lines"
        ellipsis_ends = sum(ln.endswith(("...", "…")) for ln in lines)
        if ellipsis_ends / len(lines) > cfg.max_ellipsis_lines_ratio:
            return False, "gopher_ellipsis_lines"
        # Of the words: a lone dash or bar between words ("10 de março – Interlagos") is not one.
        alpha = sum(any(c.isalpha() for c in w) for w in content)
        if alpha / len(content) < cfg.min_alpha_words_ratio:
            return False, "gopher_non_alpha_words"
        if not for_language(doc, cfg.stop_words_langs):
            return True
        if sum(w.lower() in STOP_WORDS for w in tokens) < cfg.min_stop_words:
            return False, "gopher_few_stop_words"
        return True
