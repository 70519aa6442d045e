"""Title and main text of one HTML page with trafilatura, and its language with py3langid.

Settings chosen by measurement (300 pydoc pages; the 92-page article benchmark in
shared/corpus/extraction): pydoc pages are layout tables of API docs. trafilatura's defaults
keep ~81% of their visible text and drop whole "Functions" sections; `favor_recall` keeps ~97%
and scores the same on the article benchmark (F1 0.956 vs 0.957), so it is the default.
Tables come out as `| a | b |` rows; runs of empty cells and bare separators are removed.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

import trafilatura
from py3langid.langid import MODEL_FILE, LanguageIdentifier

from tasks.config import ExtractConfig

# py3langid's cost grows with the text (a Python loop over its bytes); the first 1,000
# characters decide the language as the whole text does (bench/README.md has the check).
LANG_ID_CHARS = 1000
# Two or more cell separators with only blanks between: empty table cells.
EMPTY_CELLS = re.compile(r"\|(?:[ \t]*\|)+")


def tidy_line(line: str) -> str:
    """A table row (`| a |  | b |`) without empty cells or outer bars; other lines stripped."""
    line = line.replace("\xa0", " ").strip()
    if line.startswith("|") and line.endswith("|"):
        line = EMPTY_CELLS.sub("|", line).strip("| ")
    return line


def tidy_text(text: str) -> str:
    """Every line tidied (`tidy_line`); lines left empty dropped."""
    return "\n".join(line for line in map(tidy_line, text.splitlines()) if line)


class MainText(NamedTuple):
    """What a page yields: its title, main text ('' when none), date and canonical URL."""

    title: str | None
    text: str
    date: str | None = None
    url: str | None = None


def main_text(html: str, url: str, config: ExtractConfig) -> MainText:
    """Title, main text, date (ISO) and canonical URL of a page, by trafilatura."""
    document = trafilatura.bare_extraction(
        html,
        url=url,
        with_metadata=True,
        include_tables=config.include_tables,
        favor_precision=config.favor_precision,
        favor_recall=config.favor_recall,
    )
    if document is None:
        return MainText(None, "")
    text = tidy_text(document.text or "")
    return MainText(document.title or None, text, document.date or None, document.url or None)


@lru_cache(maxsize=1)
def _identifier() -> LanguageIdentifier:
    # Loaded once per (executor) process: about half a second.
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def identify_language(text: str) -> tuple[str, float]:
    """(ISO 639-1 code, probability in [0, 1]) of the language of `text`, judged on its
    first `LANG_ID_CHARS` characters."""
    lang, score = _identifier().classify(text[:LANG_ID_CHARS])
    return lang, float(score)
