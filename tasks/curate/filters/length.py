"""The length floor: documents with fewer than `curate.length.min_chars` non-blank characters
are dropped."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from model.config import Checked
from tasks.curate.filters.base import DocumentFilter, FilterResult


@dataclass
class LengthConfig(Checked):
    """`curate.length`: the length floor."""

    section: ClassVar[str] = "curate.length"

    min_chars: int = 100
    """Fewer stripped characters than this: dropped as too_short (>= 0)."""

    def check(self) -> None:
        self.at_least(0, "min_chars")


class LengthFilter(DocumentFilter):
    """Drops documents whose stripped text is shorter than `min_chars`."""

    name = "length"

    def __init__(self, config: LengthConfig | None = None) -> None:
        self.config = config or LengthConfig()

    def filter(self, doc: dict[str, Any]) -> FilterResult:
        if len(doc["text"].strip()) >= self.config.min_chars:
            return True
        return False, "too_short"
