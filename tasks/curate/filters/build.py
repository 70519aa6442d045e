"""Filters from `CurateConfig`, in the configured order."""

from __future__ import annotations

from collections.abc import Callable

from tasks.config import CurateConfig
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
    "length": lambda c: LengthFilter(c.min_chars),
    "links": lambda c: LinkFilter(
        read_word_list(c.blocked_domains_file, None),
        read_word_list(c.url_blockwords_file, BADWORDS),
        c.max_url_line_fraction,
        c.max_url_char_fraction,
    ),
    "gopher_repetition": lambda c: GopherRepetitionFilter(
        c.gopher_dup_line_fraction,
        c.gopher_dup_para_fraction,
        c.gopher_dup_line_char_fraction,
        c.gopher_dup_para_char_fraction,
        c.gopher_top_ngram_fractions,
        c.gopher_dup_ngram_fractions,
    ),
    "gopher_quality": lambda c: GopherQualityFilter(
        c.gopher_min_words,
        c.gopher_max_words,
        c.gopher_min_avg_word_length,
        c.gopher_max_avg_word_length,
        c.gopher_max_symbol_word_ratio,
        c.gopher_max_bullet_lines_ratio,
        c.gopher_max_ellipsis_lines_ratio,
        c.gopher_min_alpha_words_ratio,
        c.gopher_min_stop_words,
    ),
    "c4": lambda c: C4QualityFilter(
        c.c4_min_sentences, c.c4_min_words_per_line, c.c4_max_word_length, c.c4_filter_curly_bracket
    ),
    "fineweb": lambda c: FineWebQualityFilter(
        c.fineweb_line_punct_threshold,
        c.fineweb_short_line_threshold,
        c.fineweb_short_line_length,
        c.fineweb_char_dup_threshold,
        c.fineweb_newline_ratio,
    ),
    "toxicity": lambda c: ToxicityFilter(
        read_word_list(c.badwords_file, BADWORDS), c.toxicity_threshold
    ),
    "pii": lambda c: PIIFilter(),
}


def build_filters(config: CurateConfig) -> list[DocumentFilter]:
    """The filters named in `config.filters`, in that order, with their thresholds."""
    unknown = [name for name in config.filters if name not in BUILDERS]
    if unknown:
        raise ValueError(
            f"curate.filters: unknown filter(s) {unknown}; known: {', '.join(BUILDERS)}"
        )
    return [BUILDERS[name](config) for name in config.filters]
