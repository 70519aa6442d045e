"""The filter interface, datatrove-style: `filter(doc)` returns True (keep) or (False, reason).

A filter may also rewrite `doc["text"]` (remove lines, replace PII) before it decides, and
count things it did in `doc["counts"]` under names it declares in `counters`. The shared
runner (`tasks/curate/runner.py`) applies filters in order, stops at the first drop and turns
each drop into `dropped_<reason>` in the step's stats.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

FilterResult = bool | tuple[bool, str]

WORDLISTS = Path(__file__).resolve().parents[1] / "wordlists"
_WORD = re.compile(r"\w+", re.UNICODE)


class DocumentFilter(ABC):
    """One filtering rule set. Subclasses set `name` and implement `filter`."""

    name: str = "filter"
    counters: tuple[str, ...] = ()

    @abstractmethod
    def filter(self, doc: dict[str, Any]) -> FilterResult:
        """Keep (True) or drop with a reason ((False, reason)); may rewrite `doc["text"]`."""

    def count(self, doc: dict[str, Any], counter: str, n: int = 1) -> None:
        """Add `n` to one of this filter's declared counters for `doc`."""
        doc["counts"][counter] = doc["counts"].get(counter, 0) + n


def words(text: str) -> list[str]:
    """Word tokens (`\\w+` runs) of `text`, as the quality rules count them."""
    return _WORD.findall(text)


def read_word_list(path: str, default_name: str | None) -> frozenset[str]:
    """Lower-cased entries of a one-per-line list; empty `path`: the bundled list, or none."""
    if not path and default_name is None:
        return frozenset()
    file = Path(path) if path else WORDLISTS / str(default_name)
    if not file.is_file():
        raise FileNotFoundError(
            f"word list {file} does not exist: set the filter's *_file setting (e.g. "
            "curate.toxicity.badwords_file) to a file with one entry per line, or to an empty "
            "string for the bundled list"
        )
    lines = file.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip())
