"""Toxicity: the C4 bad-words rule and a profanity classifier with a document score threshold.

The classifier is alt-profanity-check (a linear SVM over a bag of words, its model shipped in
the PyPI wheel); a document's score is the highest line score over its non-empty lines, so one
abusive line in a long page is not averaged away. The word rule (C4) drops a document that
contains any entry of the list as a whole word or phrase.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from model.config import Checked
from tasks.curate.filters.base import DocumentFilter, FilterResult


@dataclass
class ToxicityConfig(Checked):
    """`curate.toxicity`: the C4 bad-words rule and the classifier's threshold."""

    section: ClassVar[str] = "curate.toxicity"

    badwords_file: str = ""
    """Bad words and phrases, one per line; "" = the bundled C4 list (tasks/curate/wordlists/)."""
    threshold: float = 0.9
    """A document whose highest line score reaches this is dropped as toxic; > 1 switches
    the classifier off (>= 0)."""

    def check(self) -> None:
        self.at_least(0, "threshold")


def badword_pattern(entries: frozenset[str]) -> re.Pattern[str] | None:
    """One regex matching any entry as whole words (case-insensitive); None for no entries."""
    if not entries:
        return None
    alternatives = "|".join(re.escape(e) for e in sorted(entries, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


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
        if self._pattern is None:
            self._pattern = badword_pattern(self.badwords)
        text = doc["text"]
        if self._pattern is not None and self._pattern.search(text):
            return False, "badwords"
        lines = [ln for ln in text.splitlines() if ln.strip()]
        threshold = self.config.threshold
        if threshold <= 1.0 and max(toxicity_scores(lines), default=0.0) >= threshold:
            return False, "toxic"
        return True
