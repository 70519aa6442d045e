"""Gopher's repetition rules (Rae et al. 2021, table A1), as datatrove implements them.

Duplicate lines and paragraphs (by count and by characters), the most frequent 2-, 3- and
4-gram's share of the characters, and the share of characters inside repeated 5- to 10-grams.
Defaults are the published thresholds; `top_ngram_fractions[i]` is for n = 2 + i and
`dup_ngram_fractions[i]` for n = 5 + i. Paragraphs and lines that hold only white space or
zero-width characters (a page's spacer paragraphs) are not counted as repeats.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

from model.config import Checked
from tasks.curate.filters.base import DocumentFilter, FilterResult

PARAGRAPH_BREAK = re.compile(r"\n{2,}")
LINE_BREAK = re.compile(r"\n+")
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"


def visible(items: list[str]) -> list[str]:
    """`items` without those that are empty once white space and zero-width characters go."""
    return [item for item in items if item.strip().strip(INVISIBLE).strip()]


def duplicates(items: list[str]) -> tuple[int, int]:
    """(number of repeated items, characters in them), counting each repeat after the first."""
    seen: set[str] = set()
    count = chars = 0
    for item in items:
        if item in seen:
            count += 1
            chars += len(item)
        else:
            seen.add(item)
    return count, chars


def top_ngram_chars(tokens: list[str], n: int) -> int:
    """Characters covered by the most frequent n-gram, if it occurs more than once."""
    grams = Counter(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    if not grams:
        return 0
    gram, freq = grams.most_common(1)[0]
    return len(gram) * freq if freq > 1 else 0


def repeated_ngram_chars(tokens: list[str], n: int) -> int:
    """Characters in non-overlapping repeats of earlier n-grams, scanning left to right."""
    seen: set[str] = set()
    chars = i = 0
    while i < len(tokens) - n + 1:
        gram = "".join(tokens[i : i + n])
        if gram in seen:
            chars += len(gram)
            i += n
        else:
            seen.add(gram)
            i += 1
    return chars


@dataclass
class GopherRepetitionConfig(Checked):
    """`curate.gopher_repetition`: Gopher's repetition thresholds (Rae et al. 2021, table A1),
    each a share in [0, 1]: of the lines or paragraphs (`*_fraction`), else of the
    characters."""

    section: ClassVar[str] = "curate.gopher_repetition"

    dup_line_fraction: float = 0.3
    """Repeated lines, by count."""
    dup_para_fraction: float = 0.3
    """Repeated paragraphs, by count."""
    dup_line_char_fraction: float = 0.2
    """Characters in repeated lines."""
    dup_para_char_fraction: float = 0.2
    """Characters in repeated paragraphs."""
    top_ngram_fractions: list[float] = field(default_factory=lambda: [0.2, 0.18, 0.16])
    """Characters covered by the most frequent n-gram, for n = 2, 3, 4 (up to 3 entries)."""
    dup_ngram_fractions: list[float] = field(
        default_factory=lambda: [0.15, 0.14, 0.13, 0.12, 0.11, 0.10]
    )
    """Characters in repeated n-grams, for n = 5 .. 10 (up to 6 entries)."""

    def check(self) -> None:
        self.fraction(
            "dup_line_fraction",
            "dup_para_fraction",
            "dup_line_char_fraction",
            "dup_para_char_fraction",
        )
        for key, most, first in (("top_ngram_fractions", 3, 2), ("dup_ngram_fractions", 6, 5)):
            values = getattr(self, key)
            self.require(
                len(values) <= most,
                key,
                f"{key} holds the limits for n = {first} .. {first + most - 1}: "
                f"at most {most} entries",
            )
            self.require(
                all(0.0 <= v <= 1.0 for v in values), key, f"{key} entries must be in [0, 1]"
            )


class GopherRepetitionFilter(DocumentFilter):
    """Drops documents whose lines, paragraphs or n-grams repeat too much."""

    name = "gopher_repetition"

    def __init__(self, config: GopherRepetitionConfig | None = None) -> None:
        self.config = config or GopherRepetitionConfig()

    def filter(self, doc: dict[str, Any]) -> FilterResult:
        cfg = self.config
        text = doc["text"]
        size = max(len(text), 1)
        paragraphs = visible(PARAGRAPH_BREAK.split(text.strip())) or [""]
        count, chars = duplicates(paragraphs)
        if count / len(paragraphs) > cfg.dup_para_fraction:
            return False, "gopher_dup_paragraphs"
        if chars / size > cfg.dup_para_char_fraction:
            return False, "gopher_dup_paragraph_chars"
        lines = visible(LINE_BREAK.split(text)) or [""]
        count, chars = duplicates(lines)
        if count / len(lines) > cfg.dup_line_fraction:
            return False, "gopher_dup_lines"
        if chars / size > cfg.dup_line_char_fraction:
            return False, "gopher_dup_line_chars"
        tokens = text.split()
        for n, limit in enumerate(cfg.top_ngram_fractions, start=2):
            if top_ngram_chars(tokens, n) / size > limit:
                return False, f"gopher_top_{n}_gram"
        for n, limit in enumerate(cfg.dup_ngram_fractions, start=5):
            if repeated_ngram_chars(tokens, n) / size > limit:
                return False, f"gopher_dup_{n}_grams"
        return True
