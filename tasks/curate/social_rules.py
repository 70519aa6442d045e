"""The social stage's settings and its link rules; plain Python (no Spark), so the config tree
and the benchmarks can import it. `tasks/curate/social.py` is the stage."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from model.config import Checked
from tasks.curate.filters.links import URL, url_char_fraction

SOURCE = "social"
MARKDOWN_LINK = re.compile(r"\[([^\]\n]*)\]\(\s*(?:https?://|ftp://|www\.)[^)\s]*\s*\)", re.I)
_WORD = re.compile(r"\w")
_SPACES = re.compile(r"[ \t]+")
_EMPTY_LINES = re.compile(r"\n{3,}")


@dataclass
class SocialConfig(Checked):
    """`curate.social`: message-level cleaning of `source = "social"` records."""

    section: ClassVar[str] = "curate.social"

    enabled: bool = True
    """Run the stage (it is skipped, with no funnel entry, when the input has no messages)."""
    filters: list[str] = field(default_factory=lambda: ["toxicity", "pii"])
    """The `curate.filters` that also judge social messages; the others skip them (the page
    rules, length, Gopher, C4 and FineWeb, would drop most messages for being short)."""
    links: Literal["keep", "strip", "drop"] = "strip"
    """URLs in a message: kept, stripped from the text, or the message dropped."""
    max_link_share: float = 0.5
    """A message with a larger share of URL characters (of its non-space characters) is
    dropped as `social_mostly_link` (in [0, 1]; 1 = never)."""
    bot_min_repeats: int = 3
    """One author posting the same text (numbers and links aside) this often: all but the
    first are `social_bot_repeat` (>= 2; 0 = off)."""
    char_ngram: int = 5
    """Near duplicates: MinHash over character n-grams of this n (>= 1)."""
    bands: int = 20
    """LSH bands (>= 1); bands x rows permutations. 20 x 5 finds pairs of Jaccard 0.5 with
    probability 0.47, 0.6 with 0.80, 0.7 with 0.98."""
    rows: int = 5
    """LSH rows per band (>= 1)."""
    seed: int = 1
    """Seed of the MinHash permutations."""
    min_estimated_jaccard: float = 0.5
    """Candidate pairs whose signatures agree on fewer than this share of permutations are
    not near duplicates (in [0, 1])."""

    def check(self) -> None:
        self.fraction("max_link_share", "min_estimated_jaccard")
        self.require(
            self.bot_min_repeats == 0 or self.bot_min_repeats >= 2,
            "bot_min_repeats",
            "bot_min_repeats must be 0 (off) or at least 2",
        )
        self.at_least(1, "char_ngram", "bands", "rows")


def strip_links(text: str) -> tuple[str, int]:
    """(`text` without its URLs, URLs removed): a Markdown link keeps its text; spaces left
    behind are collapsed, lines kept."""
    text, markdown = MARKDOWN_LINK.subn(r"\1", text)
    text, bare = URL.subn("", text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _EMPTY_LINES.sub("\n\n", "\n".join(lines)).strip(), markdown + bare


def link_verdict(text: str, config: SocialConfig) -> tuple[str, str | None, int]:
    """(text, drop reason or None, URLs stripped) of one message under the link rules."""
    if url_char_fraction(text) > config.max_link_share:
        return text, "social_mostly_link", 0
    if config.links == "keep" or not URL.search(text):
        return text, None, 0
    if config.links == "drop":
        return text, "social_has_link", 0
    stripped, removed = strip_links(text)
    if not _WORD.search(stripped):
        return text, "social_mostly_link", 0
    return stripped, None, removed
