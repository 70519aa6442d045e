"""Units of a text for paragraph dedup, and its settings; plain Python (no Spark), so the
config tree and the benchmarks can import it.

A text is split into units (lines, or paragraphs between blank lines) and the separators
between them, so that joining them gives the text back byte for byte; a unit's key is a
stable 64-bit hash of its whitespace-collapsed (optionally lower-cased) text.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

from model.config import Checked

TOO_SHORT = "too_short_after_paragraph_dedup"
# a separator is a line break plus any blank lines after it; a paragraph break needs one blank
SEPARATORS = {
    "line": re.compile(r"(\n(?:[^\S\n]*\n)*)"),
    "paragraph": re.compile(r"(\n[^\S\n]*\n(?:[^\S\n]*\n)*)"),
}


@dataclass
class ParagraphDedupConfig(Checked):
    """`curate.paragraph_dedup`: units repeated across documents, removed from all of them."""

    section: ClassVar[str] = "curate.paragraph_dedup"

    enabled: bool = True
    """Run the stage (right after the filters)."""
    unit: Literal["line", "paragraph"] = "line"
    """"line": every line (Dolma's paragraphs are lines); "paragraph": text between blank
    lines. Extracted web pages hold one paragraph per line, and the c4 filter joins its kept
    lines with single newlines, so blank-line paragraphs rarely survive to this stage."""
    min_documents: int = 3
    """A unit in at least this many different documents is removed from all of them (>= 2).
    2 would strip a quotation two pages share; boilerplate repeats across a site's pages."""
    min_chars: int = 1
    """Units shorter than this (normalised, in characters) are never removed (>= 1). Short
    lines such as "Next" or "Home" are boilerplate too, so the default takes every unit."""
    lowercase: bool = False
    """Compare units case-insensitively (whitespace is always collapsed and stripped)."""
    min_words_after: int = 20
    """A document this stage changed and left with fewer words is dropped (>= 0)."""

    def check(self) -> None:
        self.at_least(2, "min_documents")
        self.at_least(1, "min_chars")
        self.at_least(0, "min_words_after")


def split_units(text: str, unit: str) -> tuple[list[str], list[str]]:
    """(units, separators) with text == u0 + s0 + u1 + ... + un; units may be empty."""
    parts = SEPARATORS[unit].split(text)
    return parts[0::2], parts[1::2]


def unit_key(unit: str, config: ParagraphDedupConfig) -> int | None:
    """A stable signed 64-bit hash of the unit's normalised text; None when it is too short."""
    normal = " ".join(unit.split())
    if len(normal) < config.min_chars:
        return None
    if config.lowercase:
        normal = normal.lower()
    digest = hashlib.blake2b(normal.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def rebuild(units: Sequence[str], separators: Sequence[str], removed: set[int]) -> str:
    """The text of the kept units in order; between two kept units the widest separator
    (most line breaks, the first among equals) of those they had between them."""
    out: list[str] = []
    last_kept = None
    for i, unit in enumerate(units):
        if i in removed:
            continue
        if last_kept is not None:
            out.append(max(separators[last_kept:i], key=lambda s: s.count("\n")))
        out.append(unit)
        last_kept = i
    return "".join(out)
