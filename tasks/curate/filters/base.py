"""The filter interface, datatrove-style: `filter(doc)` returns True (keep) or (False, reason).

A filter may also rewrite `doc["text"]` (remove lines, replace PII) before it decides, and
count things it did in `doc["counts"]` under names it declares in `counters`. The shared
runner (`tasks/curate/runner.py`) applies filters in order, stops at the first drop and turns
each drop into `dropped_<reason>` in the step's stats. `doc["lang"]` and `doc["lang_score"]`
are the extract step's language id and its probability (None when unknown).

The helpers here make the line and word rules hold beyond English web text:
- `logical_lines`: hard-wrapped text (Project Gutenberg books, plain-text mail: lines of about
  the same width, paragraphs between blank lines) is judged by paragraph, not by its wrapped
  lines, most of which end mid-sentence;
- `split_words`: in scripts written without spaces (Chinese, Japanese, Thai, ...) each
  character counts as a word, so a Japanese article is not "too few words";
- `for_language`: rules built on English word lists apply only to the languages they list
  (and to text whose language is unsure).
"""

from __future__ import annotations

import re
import unicodedata
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

FilterResult = bool | tuple[bool, str]

WORDLISTS = Path(__file__).resolve().parents[1] / "wordlists"
_WORD = re.compile(r"\w+", re.UNICODE)
# Han, Hiragana, Katakana, Thai, Lao, Khmer, Myanmar: scripts that write words without spaces.
SPACELESS = re.compile(
    r"[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
    r"\uf900-\ufaff\uff66-\uff9f]"
)
# Full stops of other scripts: Devanagari and Bengali danda (।, ॥), Arabic and Urdu (؟, ۔),
# Ethiopic (።, ፧), Myanmar (။), Armenian (։); they end a sentence with or without a space.
SCRIPT_STOPS = "।॥؟۔።፧။։"
# Thai, Lao and Khmer end a sentence with a space, not a sign.
_UNPUNCTUATED_END = re.compile(r"[\u0e00-\u0eff\u1780-\u17ff]$")
ETHIOPIC_WORDSPACE = "\u1361"  # ፡ between the words of Amharic, Tigrinya, Ge'ez
_BLANK_LINE = re.compile(r"\n[ \t\u200b\ufeff]*\n")


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


def split_words(text: str) -> list[str]:
    """Whitespace-separated words (Ethiopic's word space ፡ separates too), with each character
    of a spaceless script (Han, kana, Thai, ...) a word of its own, its combining vowel and
    tone marks attached, and the rest of its token kept together."""
    out: list[str] = []
    for token in text.replace(ETHIOPIC_WORDSPACE, " ").split():
        if not SPACELESS.search(token):
            out.append(token)
            continue
        rest = ""
        for char in token:
            if out and not rest and unicodedata.category(char).startswith("M"):
                out[-1] += char  # a Thai vowel or tone mark belongs to the letter before it
            elif SPACELESS.match(char):
                if rest.strip():
                    out.append(rest)
                out.append(char)
                rest = ""
            else:
                rest += char
        if rest.strip():
            out.append(rest)
    return out


def unpunctuated_script_end(line: str) -> bool:
    """Whether `line` ends in a letter of a script that ends sentences without a sign (Thai,
    Lao, Khmer): the line rules count that as a sentence's end."""
    return bool(_UNPUNCTUATED_END.search(line.rstrip()))


def spaceless_share(words_: list[str]) -> float:
    """The share of `words_` (from `split_words`) in a spaceless script."""
    return sum(bool(SPACELESS.match(w)) for w in words_) / max(len(words_), 1)


def hard_wrapped(text: str) -> bool:
    """True for text wrapped at a fixed width: at least 6 lines that are not the last of their
    paragraph (block between blank lines), no line wider than 100 characters, fewer than half
    of those lines ending a sentence (wrapping breaks mid-sentence), and at least 3/4 of them
    within 25 % of the widest. One paragraph or sentence per line (what trafilatura writes) is
    not."""
    blocks = [b for b in _BLANK_LINE.split(text) if b.strip()]
    inner = [line.rstrip() for block in blocks for line in block.strip("\n").split("\n")[:-1]]
    if len(inner) < 6:
        return False
    width = max(len(line) for line in text.split("\n"))
    if width > 100:
        return False
    if sum(line.endswith((".", "!", "?", ":", ";")) for line in inner) >= 0.5 * len(inner):
        return False  # most lines end a sentence: one sentence per line, not wrapped prose
    return sum(len(line) >= 0.75 * width for line in inner) >= 0.75 * len(inner)


def logical_lines(text: str) -> tuple[list[str], str]:
    """(lines, separator): the text's lines, or for hard-wrapped text its paragraphs with the
    wrapped lines joined by spaces; `separator` joins kept lines back ("\n" or "\n\n")."""
    if not hard_wrapped(text):
        return text.split("\n"), "\n"
    blocks = [b for b in _BLANK_LINE.split(text) if b.strip()]
    return [" ".join(line.strip() for line in b.split("\n") if line.strip()) for b in blocks], (
        "\n\n"
    )


# Below this language-id probability the id is a guess (short or mixed text: 1 in 12 of the
# labelled English tweets is "identified" as another language, mostly with less than this).
LANG_SURE = 0.8


def for_language(doc: dict[str, Any], langs: list[str]) -> bool:
    """Whether a rule made for `langs` (ISO 639-1 codes; empty = every language) applies to
    `doc`: yes, unless its `lang` is surely (`lang_score` >= LANG_SURE) another language."""
    lang, score = doc.get("lang"), doc.get("lang_score")
    if not langs or lang is None or lang in langs:
        return True
    return score is not None and score < LANG_SURE
