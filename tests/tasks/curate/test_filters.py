"""Each filter on tiny inline documents: what it keeps, drops (with which reason), rewrites."""

from __future__ import annotations

from tasks.curate.filters.c4 import C4Config, C4QualityFilter
from tasks.curate.filters.fineweb import FineWebQualityFilter
from tasks.curate.filters.gopher_quality import GopherQualityFilter
from tasks.curate.filters.gopher_repetition import GopherRepetitionFilter
from tasks.curate.filters.links import LinkFilter
from tasks.curate.filters.pii import PIIFilter
from tasks.curate.runner import filter_document, funnel

PROSE = (
    "The harbour was quiet in the early morning and the boats rocked gently at their moorings.\n"
    "Fishermen walked to the end of the pier with their nets and spoke about the weather.\n"
    "A gull landed on the rail and watched them with one yellow eye, waiting for scraps.\n"
    "By noon the sun had burned off the mist and the town woke to the sound of the market.\n"
    "Children ran between the stalls while their parents bargained for bread and fresh fish.\n"
    "In the evening the lamps were lit along the quay and the sailors sang old songs.\n"
)


def doc(text: str, url: str = "http://example.org/a") -> dict:
    return {"text": text, "url": url, "counts": {}}


def test_prose_passes_every_quality_rule():
    for rule in (
        GopherRepetitionFilter(),
        GopherQualityFilter(),
        C4QualityFilter(),
        FineWebQualityFilter(),
    ):
        assert rule.filter(doc(PROSE)) is True, rule.name


def test_quality_rules_drop_with_their_reasons():
    assert GopherQualityFilter().filter(doc("too few words here")) == (
        False,
        "gopher_too_few_words",
    )
    assert GopherRepetitionFilter().filter(doc("same line again\n" * 20)) == (
        False,
        "gopher_dup_lines",
    )
    assert C4QualityFilter().filter(doc(PROSE + "Lorem ipsum dolor sit amet.")) == (
        False,
        "c4_lorem_ipsum",
    )
    assert C4QualityFilter().filter(doc(PROSE + "if (x) { return y; } is code.")) == (
        False,
        "c4_curly_bracket",
    )
    assert FineWebQualityFilter().filter(doc("a\nb\nc\nd")) == (False, "fineweb_line_punct")


def test_c4_removes_lines_without_terminal_punctuation():
    d = doc(PROSE + "Share this page\nMenu Home About")
    assert C4QualityFilter().filter(d) is True
    assert d["text"] == PROSE.strip() and d["counts"] == {"c4_lines_removed": 2}


def test_c4_trims_an_unterminated_tail_but_not_a_one_sentence_line():
    # a paragraph extracted onto one line, its closing title without a full stop (a real gold
    # body of the extraction benchmark ends "... encontrar em sua vida Um Amor de Verdade")
    line = "Gostar é sentir com a alma. Cada um é o único responsável. Só quem se ama encontra"
    d = doc(PROSE + line + "\nPosted by Ana. Read more")
    assert C4QualityFilter().filter(d) is True
    assert d["text"] == PROSE + "Gostar é sentir com a alma. Cada um é o único responsável."
    assert d["counts"] == {"c4_lines_removed": 1, "c4_tails_trimmed": 1}
    strict = C4QualityFilter(C4Config(trim_unterminated_tail=False))
    d = doc(PROSE + line)
    assert strict.filter(d) is True and d["text"] == PROSE.strip()
    assert d["counts"] == {"c4_lines_removed": 1}


def test_links_block_domains_and_url_words_and_strip_url_lines():
    rule = LinkFilter(frozenset({"bad.example"}), frozenset({"casino"}))
    assert rule.filter(doc(PROSE, "https://www.bad.example/x")) == (False, "blocked_domain")
    assert rule.filter(doc(PROSE, "https://ok.example/casino-night")) == (False, "blocked_url_word")
    d = doc(PROSE + "http://a.example/one http://a.example/two\n")
    assert rule.filter(d) is True and d["text"] == PROSE and d["counts"] == {"url_lines_removed": 1}
    spam = doc("please read the whole page at http://a.example/abcdef today\n" * 5)
    assert rule.filter(spam) == (False, "link_spam")


def test_pii_is_replaced_and_counted():
    d = doc("Mail bob@example.com, call +1 555-123-4567, host 8.8.8.8, lan 10.0.0.1, 2024-05-18.")
    assert PIIFilter().filter(d) is True
    assert d["text"] == "Mail <EMAIL>, call <PHONE>, host <IP>, lan 10.0.0.1, 2024-05-18."
    assert d["counts"] == {"pii_email": 1, "pii_phone": 1, "pii_ip": 1}


def test_runner_reports_the_first_drop_and_funnel_counts_down():
    rules = [PIIFilter(), GopherQualityFilter(), C4QualityFilter()]
    assert filter_document(rules, doc("a b c")) == ("gopher_quality", "gopher_too_few_words")
    assert filter_document(rules, doc(PROSE)) is None
    assert funnel(10, ["a", "b"], {"a": 3, "b": 2}) == {"input": 10, "after_a": 7, "after_b": 5}
