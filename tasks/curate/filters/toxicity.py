"""Toxicity: the C4 bad-words rule and a profanity classifier with a document score threshold.

The classifier is alt-profanity-check (a linear SVM over a bag of words, its model shipped in
the PyPI wheel). It scores each line (each paragraph of hard-wrapped text, `logical_lines`);
a document is dropped when the lines scoring at least `threshold` hold `toxic_share` of its
words or more: a tweet is one line, a long page with one mild insult ("stupid", in Alice in
Wonderland) is kept, a page of abuse is not.

The word rule comes from C4, which dropped a page on any one entry of the list. On real text
that drops news about crimes ("rape allegation", "sex trafficker") and Python's docs (`xxx`,
a placeholder): here a document is dropped when its hits reach `badwords_ratio` of its words.
An entry only counts as a word of its own: not inside an identifier, path, URL or file name
(`spam.xxx`, `/xxx/`, `xxx-large`). Both the list and the classifier are English, so they
apply to `langs` only (a document of unknown language gets them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from model.config import Checked
from tasks.curate.filters.base import (
    DocumentFilter,
    FilterResult,
    for_language,
    logical_lines,
    split_words,
)


@dataclass
class ToxicityConfig(Checked):
    """`curate.toxicity`: the C4 bad-words rule and the classifier's threshold."""

    section: ClassVar[str] = "curate.toxicity"

    badwords_file: str = ""
    """Bad words and phrases, one per line; "" = the bundled C4 list (tasks/curate/wordlists/)."""
    badwords_ratio: float = 0.01
    """Bad-word hits per word at which a document is dropped (0: any hit, as C4 did; in
    [0, 1])."""
    threshold: float = 0.9
    """A line scoring at least this is toxic; > 1 switches the classifier off (>= 0)."""
    toxic_share: float = 0.1
    """A document whose toxic lines hold at least this share of its words is dropped as toxic
    (0: any toxic line; in [0, 1])."""
    langs: list[str] = field(default_factory=lambda: ["en"])
    """Languages (ISO 639-1, the extract step's `lang`) the English list and classifier apply
    to; empty = every language."""

    def check(self) -> None:
        self.at_least(0, "threshold")
        self.fraction("badwords_ratio", "toxic_share")


def badword_pattern(entries: frozenset[str]) -> re.Pattern[str] | None:
    """One regex matching any entry as whole words (case-insensitive); None for no entries."""
    if not entries:
        return None
    alternatives = "|".join(re.escape(e) for e in sorted(entries, key=len, reverse=True))
    # Not inside a word, identifier, path, URL or file name: a dot only ends the word if no
    # word character follows it (end of sentence, not `xxx.py`).
    return re.compile(rf"(?<![\w./\\-])(?:{alternatives})(?![\w/\\-]|\.\w)", re.IGNORECASE)


def toxicity_scores(texts: list[str]) -> list[float]:
    """Probability of profanity/abuse for each text, from alt-profanity-check's model."""
    from profanity_check import predict_prob

    return [float(p) for p in predict_prob(texts)] if texts else []


class ToxicityFilter(DocumentFilter):
    """Drops documents with a listed bad word, or whose toxicity score reaches
    `curate.toxicity.threshold`."""

    name = "toxicity"

    def __init__(self, badwords: frozenset[str], config: ToxicityConfig | None = None) -> None:
        """`badwords`: the entries of the config's `badwords_file`."""
        self.badwords = badwords
        self.config = config or ToxicityConfig()
        self._pattern: re.Pattern[str] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_pattern": None}  # compiled lazily on each executor

    def filter(self, doc: dict[str, Any]) -> FilterResult:
        cfg = self.config
        if not for_language(doc, cfg.langs):
            return True
        if self._pattern is None:
            self._pattern = badword_pattern(self.badwords)
        text = doc["text"]
        n_words = max(len(split_words(text)), 1)
        if self._pattern is not None:
            hits = sum(1 for _ in self._pattern.finditer(text))
            if hits and hits / n_words >= cfg.badwords_ratio:
                return False, "badwords"
        if cfg.threshold > 1.0:
            return True
        lines = [ln for ln in logical_lines(text)[0] if ln.strip()]
        scores = toxicity_scores(lines)
        pairs = zip(lines, scores, strict=True)
        toxic_words = sum(len(split_words(ln)) for ln, score in pairs if score >= cfg.threshold)
        if toxic_words and toxic_words / n_words >= cfg.toxic_share:
            return False, "toxic"
        return True
