"""Main text of a page with trafilatura, tidied, and its language with py3langid."""

from __future__ import annotations

import heapq
import pydoc

from tasks.config import ExtractConfig
from tasks.extract.main_text import identify_language, main_text, tidy_text

ARTICLE = """<html><head><title>On Heaps</title></head><body>
<nav><a href="/">Home</a> <a href="/about">About</a></nav>
<article><h1>On Heaps</h1>
<p>A heap is a tree in which every parent is smaller than its children, so the smallest item
is always at the root. Pushing and popping both take logarithmic time.</p>
<p>Heaps make good priority queues, and a heap sort needs no extra memory.</p></article>
<footer>Copyright 2024</footer></body></html>"""


def test_tidy_text_drops_empty_cells_and_nbsp() -> None:
    raw = "| Functions |  |  | \n|  |  | heapify(x)\xa0Transform list | \n|  |  |\n\nplain line"
    assert tidy_text(raw) == "Functions\nheapify(x) Transform list\nplain line"
    assert tidy_text("| a | b |") == "a | b"
    assert tidy_text("x || y |= z") == "x || y |= z"  # not a table row: left alone


def test_main_text_keeps_the_article_not_the_navigation() -> None:
    title, text, _, url = main_text(ARTICLE, "http://127.0.0.1/heaps.html", ExtractConfig())
    assert url == "http://127.0.0.1/heaps.html"
    assert title == "On Heaps"
    assert text.startswith("On Heaps\nA heap is a tree in which every parent is smaller")
    assert text.endswith("a heap sort needs no extra memory.")
    assert "About" not in text and "Copyright" not in text


def test_main_text_keeps_the_api_tables_of_pydoc_pages() -> None:
    page = pydoc.html.page(pydoc.describe(heapq), pydoc.html.document(heapq, "heapq"))
    title, text, _, _ = main_text(page, "http://127.0.0.1/heapq.html", ExtractConfig())
    assert title == "Python: module heapq"
    assert "Heap queue algorithm" in text
    # The function docs live in a layout table that default settings drop.
    assert "heappush(heap, item, /)" in text and "Push item onto heap" in text
    assert "&nbsp;" not in text and "\xa0" not in text and "|  |" not in text


def test_main_text_of_an_empty_page_is_empty() -> None:
    assert main_text("<html><body></body></html>", "http://h/", ExtractConfig()) == (
        None,
        "",
        None,
        None,
    )


def test_identify_language_gives_code_and_probability() -> None:
    lang, score = identify_language("The quick brown fox jumps over the lazy dog near the river.")
    assert lang == "en" and 0.5 < score <= 1.0
    lang, score = identify_language("Der schnelle braune Fuchs springt über den faulen Hund.")
    assert lang == "de" and 0.5 < score <= 1.0
