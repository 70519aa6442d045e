"""Filters that keep clean text: real news, books and API docs (tests/data/filters/) pass the
default filter chain, and the causes of the false positives the issue saw stay fixed (a single
bad word in a long text, `xxx` placeholders, version strings as IP addresses, UUIDs as phone
numbers, English rules on other languages, Japanese word counts, hard-wrapped books)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.config import CurateConfig
from tasks.curate.filters.base import hard_wrapped, logical_lines, split_words
from tasks.curate.filters.build import build_filters
from tasks.curate.filters.c4 import C4QualityFilter
from tasks.curate.filters.gopher_quality import GopherQualityFilter
from tasks.curate.filters.pii import PIIFilter
from tasks.curate.filters.toxicity import ToxicityFilter
from tasks.curate.runner import filter_document

DATA = Path(__file__).resolve().parents[2] / "data" / "filters"
# (file, the extract step's language id for it: py3langid on the text, all above 0.99)
CLEAN = [
    ("news_en_assange.txt", "en"),
    ("news_en_epstein.txt", "en"),
    ("news_de_dmexco.txt", "de"),
    ("news_ja_kindle.txt", "ja"),
    ("book_alice_stupid.txt", "en"),
    ("book_alice_brackets.txt", "en"),
    ("book_pride_sex.txt", "en"),
]


def real(name: str) -> str:
    return (DATA / name).read_text("utf-8")


def doc(text: str, lang: str | None = None, score: float | None = None) -> dict:
    return {
        "url": "http://example.org/",
        "text": text,
        "lang": lang,
        "lang_score": score,
        "counts": {},
    }


@pytest.mark.parametrize(("name", "lang"), CLEAN)
def test_real_clean_text_passes_the_default_chain(name, lang):
    chain = build_filters(CurateConfig())
    document = doc(real(name), lang, 0.999)
    assert filter_document(chain, document) is None
    assert len(document["text"]) > 0.8 * len(real(name))  # lines removed, not the text


def test_a_single_bad_word_in_a_long_text_is_kept_a_dense_one_is_not():
    (toxicity,) = build_filters(CurateConfig(filters=["toxicity"]))
    story = real("news_en_assange.txt")
    assert "rape" in story.lower()
    assert toxicity.filter(doc(story, "en", 1.0)) is True
    # C4's own rule (any hit drops) is one setting away
    strict = ToxicityFilter(toxicity.badwords, toxicity.config.__class__(badwords_ratio=0.0))
    assert strict.filter(doc(story, "en", 1.0)) == (False, "badwords")
    assert toxicity.filter(doc("watch xxx videos here now", "en", 1.0)) == (False, "badwords")


def test_placeholders_inside_identifiers_and_paths_are_not_bad_words():
    (toxicity,) = build_filters(CurateConfig(filters=["toxicity"]))
    strict = ToxicityFilter(toxicity.badwords, toxicity.config.__class__(badwords_ratio=0.0))
    for text in (
        "see RTLD_xxx constants",
        "open spam.xxx first",
        "the /xxx/ folder",
        "a xxx-large shirt",
    ):
        assert strict.filter(doc(text + " in the docs.", "en", 1.0)) is True, text
    assert strict.filter(doc("xxx.", "en", 1.0)) == (False, "badwords")
    page = real("pydoc_distutils.cmd.txt")
    assert "XXX" in page and toxicity.filter(doc(page, "en", 1.0)) is True


def test_version_strings_oids_and_uuids_are_not_pii():
    pii = PIIFilter()
    for name in ("pydoc_distutils.version.txt", "pydoc_uuid.txt"):
        text = real(name)
        document = doc(text, "en", 1.0)
        assert pii.filter(document) is True
        # the modules' authors' e-mail addresses go; nothing else is touched
        assert set(document["counts"]) <= {"pii_email"}, (name, document["counts"])
        kept = document["text"].replace("<EMAIL>", "")
        assert "<IP>" not in kept and "<PHONE>" not in kept, name
    samples = {
        "invalid version numbers: 1 2.7.2.2 1.3.a4": "2.7.2.2",
        "oid='1.3.6.1.5.5.7.3.2'": "1.3.6.1.5.5.7.3.2",
        "'1.0.0.127.in-addr.arpa'": "1.0.0.127",
        "mask '255.255.255.255' for a host": "255.255.255.255",
        "UUID('12345678-1234-5678-1234-567812345678')": "1234-5678-1234",
    }
    for text, kept in samples.items():
        document = doc(text)
        pii.filter(document)
        assert kept in document["text"], text
        assert document["counts"] == {}, text


def test_real_addresses_and_phone_numbers_are_still_replaced():
    document = doc("The server at 8.8.4.4 answered. Call 347-966-3806 or +44 20 7946 0958.")
    PIIFilter().filter(document)
    assert document["text"] == "The server at <IP> answered. Call <PHONE> or <PHONE>."
    assert document["counts"] == {"pii_ip": 1, "pii_phone": 2}


def test_english_word_rules_apply_only_to_english_unless_the_language_is_unsure():
    german = real("news_de_dmexco.txt")
    rule = GopherQualityFilter()
    assert rule.filter(doc(german, "de", 0.99)) is True
    assert rule.filter(doc(german, "de", 0.4)) == (False, "gopher_few_stop_words")  # a guess
    assert rule.filter(doc(german, None)) == (False, "gopher_few_stop_words")  # unknown


def test_japanese_words_are_counted_per_character():
    japanese = real("news_ja_kindle.txt")
    assert len(japanese.split()) < 50 < len(split_words(japanese))
    assert GopherQualityFilter().filter(doc(japanese, "ja", 1.0)) is True
    assert C4QualityFilter().filter(doc(japanese, "ja", 1.0)) is True


def test_thai_marks_stay_on_their_letter_and_amharic_word_spaces_split():
    thai = "มนุษย์ทั้งหลาย"  # from the UDHR (tests/data/multilingual/tha.html)
    assert all(any(c.isalpha() for c in w) for w in split_words(thai))
    assert "".join(split_words(thai)) == thai
    assert split_words("የሰው፡ልጅ፡ሁሉ") == ["የሰው", "ልጅ", "ሁሉ"]


def test_hard_wrapped_books_are_judged_by_paragraph():
    book = real("book_alice_brackets.txt")
    assert hard_wrapped(book)
    paragraphs, separator = logical_lines(book)
    assert separator == "\n\n" and len(paragraphs) == book.strip().count("\n\n") + 1
    assert any(p.endswith("(Which was very likely true.)") for p in paragraphs)
    news = real("news_en_epstein.txt")
    assert not hard_wrapped(news) and logical_lines(news) == (news.split("\n"), "\n")
    document = doc(book, "en", 1.0)
    assert C4QualityFilter().filter(document) is True
    assert "(Which was very likely true.)" in document["text"]
    assert "\n\n" in document["text"]  # the kept paragraphs keep their wrapping
