"""C4's line and document rules (Raffel et al. 2020), as datatrove's C4QualityFilter has them,
with the paper's 3 sentences per page (datatrove: 5) and 3 words per line (datatrove's; the
paper: 5).

Lines are kept only if they end in terminal punctuation (not an ellipsis), have at least
`min_words_per_line` words, no word longer than `max_word_length`, and mention neither
"javascript" nor a cookie/terms policy; citation markers are removed. A document is dropped
for "lorem ipsum", a curly bracket (code), or fewer than `min_sentences` sentences kept.

Beyond C4's ASCII web text: curly closing quotes and the full stops of CJK, Devanagari,
Bengali, Arabic, Urdu, Ethiopic, Myanmar and Armenian end a line too (Thai, Lao and Khmer,
which end a sentence with a space, end a line with any letter of theirs), as does
a full stop followed by closing brackets or emphasis marks ("(Which was very likely true.)",
"_the present book._"), words
are counted with `split_words` (a character of Chinese or Japanese is a word), and in
hard-wrapped text (books) the unit is the paragraph, not the wrapped line (`logical_lines`).
A line of at least two whole sentences whose last words lack a full stop (a paragraph that
extraction put on one line, ending in a signature or a title without punctuation) loses only
that unterminated tail, counted in `c4_tails_trimmed`, instead of the whole line
(`trim_unterminated_tail`; C4 itself removes the line).
"""

from __future__ import annotations

import re
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

END_PUNCTUATION = (
    ".", "?", "!", '"', "'", "”", "’", "»", "。", "！", "？", "」", "』", *SCRIPT_STOPS
)  # fmt: skip

POLICY_SUBSTRINGS = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)
CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
# Closing quotes, brackets and emphasis marks (`_`, `*`) after the full stop still end it.
CLOSERS = "\"'”’»)]_*"
SENTENCE_END = re.compile(rf"[.!?]+[{re.escape(CLOSERS)}]*(?:\s+|$)|[。！？{SCRIPT_STOPS}]+")


def ends_sentence(line: str) -> bool:
    """Whether `line` ends with a sentence's end: punctuation (before or after closing marks)
    or, in a script that ends sentences with a space, a letter."""
    return ends_with(line, END_PUNCTUATION) or unpunctuated_script_end(line.rstrip(CLOSERS) or line)


def terminated_part(line: str) -> str:
    """`line` up to the end of its last whole sentence, or "" if fewer than two sentences
    end in it before an unterminated tail."""
    ends = list(SENTENCE_END.finditer(line))
    if len(ends) < 2 or ends[-1].end() >= len(line):
        return ""
    return line[: ends[-1].end()].rstrip()


def ends_with(line: str, suffix: str | tuple[str, ...]) -> bool:
    """Whether `line` ends with `suffix`, before or after its closing quotes and brackets."""
    return line.endswith(suffix) or (line.rstrip(CLOSERS) or line).endswith(suffix)


def count_sentences(line: str) -> int:
    """Sentences in a line: runs of text closed by ., ! or ? (at least one if non-empty)."""
    pieces = [p for p in SENTENCE_END.split(line) if p.strip()]
    return max(len(pieces), 1 if line.strip() else 0)


@dataclass
class C4Config(Checked):
    """`curate.c4`: C4's line and document thresholds (Raffel et al. 2020)."""

    section: ClassVar[str] = "curate.c4"

    min_sentences: int = 3
    """Fewer sentences in the kept lines: dropped (>= 0). 3 as in the C4 paper and its TFDS
    code (datatrove uses 5, which drops short complete articles)."""
    min_words_per_line: int = 3
    """A line with fewer words is removed (>= 0)."""
    max_word_length: int = 1000
    """A line with a longer word is removed (>= 1)."""
    filter_curly_bracket: bool = True
    """Drop documents with a curly bracket (code) in a kept line."""
    trim_unterminated_tail: bool = True
    """A line of two or more whole sentences that ends without punctuation keeps those
    sentences and loses the tail (C4 removes the whole line: set false for that)."""

    def check(self) -> None:
        self.at_least(0, "min_sentences", "min_words_per_line")
        self.at_least(1, "max_word_length")


class C4QualityFilter(DocumentFilter):
    """The C4 heuristics: rewrites the text to its kept lines, drops by document rules."""

    name = "c4"
    counters = ("c4_lines_removed", "c4_tails_trimmed")

    def __init__(self, config: C4Config | None = None) -> None:
        self.config = config or C4Config()

    def filter(self, doc: dict[str, Any]) -> FilterResult:
        cfg = self.config
        lines, separator = logical_lines(doc["text"])
        kept: list[str] = []
        sentences = tails = 0
        for raw in lines:
            trimmed = False
            line = raw.strip()
            line_words = split_words(line)
            if any(len(w) > cfg.max_word_length for w in line_words):
                continue
            line = CITATION.sub("", line)
            if not ends_sentence(line):
                line = terminated_part(line) if cfg.trim_unterminated_tail else ""
                if not line:
                    continue
                trimmed = True
            if ends_with(line, "..."):
                continue
            if len(line_words) < cfg.min_words_per_line:
                continue
            lower = line.lower()
            if "lorem ipsum" in lower:
                return False, "c4_lorem_ipsum"
            if "javascript" in lower or any(p in lower for p in POLICY_SUBSTRINGS):
                continue
            if cfg.filter_curly_bracket and "{" in line:
                return False, "c4_curly_bracket"
            sentences += count_sentences(line)
            tails += trimmed
            kept.append(line)
        if sentences < cfg.min_sentences:
            return False, "c4_too_few_sentences"
        self.count(doc, "c4_lines_removed", len(lines) - len(kept))
        if tails:
            self.count(doc, "c4_tails_trimmed", tails)
        doc["text"] = separator.join(kept).strip()
        return True
