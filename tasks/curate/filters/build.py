"""Filters from `CurateConfig`, in the configured order, each with its own config section."""

from __future__ import annotations

from collections.abc import Callable

from tasks.config import FILTER_NAMES, CurateConfig
from tasks.curate.filters.base import DocumentFilter, read_word_list
from tasks.curate.filters.c4 import C4QualityFilter
from tasks.curate.filters.fineweb import FineWebQualityFilter
from tasks.curate.filters.gopher_quality import GopherQualityFilter
from tasks.curate.filters.gopher_repetition import GopherRepetitionFilter
from tasks.curate.filters.length import LengthFilter
from tasks.curate.filters.links import LinkFilter
from tasks.curate.filters.pii import PIIFilter
from tasks.curate.filters.toxicity import ToxicityFilter

BADWORDS = "badwords_en_c4.txt"

BUILDERS: dict[str, Callable[[CurateConfig], DocumentFilter]] = {
    "length": lambda c: LengthFilter(c.length),
    "links": lambda c: LinkFilter(
        read_word_list(c.links.blocked_domains_file, None),
        read_word_list(c.links.url_blockwords_file, BADWORDS),
        c.links,
    ),
    "gopher_repetition": lambda c: GopherRepetitionFilter(c.gopher_repetition),
    "gopher_quality": lambda c: GopherQualityFilter(c.gopher_quality),
    "c4": lambda c: C4QualityFilter(c.c4),
    "fineweb": lambda c: FineWebQualityFilter(c.fineweb),
    "toxicity": lambda c: ToxicityFilter(
        read_word_list(c.toxicity.badwords_file, BADWORDS), c.toxicity
    ),
    "pii": lambda c: PIIFilter(),
}
assert tuple(BUILDERS) == FILTER_NAMES, "tasks/config.py FILTER_NAMES lists every filter"


def build_filters(config: CurateConfig) -> list[DocumentFilter]:
    """The filters named in `config.filters` (checked when the config is built), in that order,
    with their thresholds."""
    return [BUILDERS[name](config) for name in config.filters]
