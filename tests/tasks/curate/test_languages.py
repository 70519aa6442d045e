"""Many languages: the real extract (main text + language id) and the default curate filters on
the UDHR, a parallel text in 15 (tests/data/multilingual) or 26 (shared corpus) languages."""

from __future__ import annotations

import re
from pathlib import Path

from tasks.config import CurateConfig, ExtractConfig
from tasks.curate.filters.build import build_filters
from tasks.curate.runner import filter_document
from tasks.extract.main_text import identify_language, main_text

DATA = Path(__file__).resolve().parents[2] / "data" / "multilingual"
HTML_LANG = re.compile(r'<html[^>]*\blang="([a-z]+)')


def judged(page: Path) -> dict[str, object]:
    """Expected and identified language of one UDHR page, and the default filters' verdict."""
    html = page.read_text(encoding="utf-8")
    expected = HTML_LANG.search(html).group(1)
    text = main_text(html, f"https://udhr.example/{page.stem}", ExtractConfig()).text
    lang, score = identify_language(text)
    doc = {"url": f"https://udhr.example/{page.stem}", "text": text, "lang": lang}
    doc.update(lang_score=score, counts={})
    return {
        "expected": expected,
        "lang": lang,
        "drop": filter_document(build_filters(CurateConfig()), doc),
    }


def check_pages(pages: list[Path]) -> None:
    results = {page.stem: judged(page) for page in pages}
    wrong = {
        k: (r["expected"], r["lang"]) for k, r in results.items() if r["lang"] != r["expected"]
    }
    dropped = {k: r["drop"] for k, r in results.items() if r["drop"] is not None}
    assert not wrong, f"language id wrong (expected, got): {wrong}"
    assert not dropped, f"clean UDHR text dropped (stage, reason): {dropped}"


def test_committed_udhr_pages_are_identified_and_kept() -> None:
    pages = sorted(DATA.glob("*.html"))
    scripts = {p.stem for p in pages}
    assert len(pages) >= 10 and {"cmn_hans", "arb", "heb", "rus", "tha", "amh"} <= scripts
    check_pages(pages)


def test_shared_udhr_pages_in_26_languages_are_identified_and_kept(shared_corpus: Path) -> None:
    pages = sorted((shared_corpus / "multilingual").glob("*.html"))
    assert len(pages) == 26
    check_pages(pages)
