"""Paragraph dedup on real text: Alice's paragraphs as page bodies, a Gutenberg licence notice
and a site menu shared by the pages as boilerplate (tests/data/paragraph_dedup/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.config import SettingError
from tasks.config import ConfigError, CurateConfig, load_config
from tasks.crawl.records import DOCUMENT_SCHEMA
from tasks.curate.curate import curate_documents
from tasks.curate.paragraph_dedup import paragraph_dedup
from tasks.curate.paragraphs import TOO_SHORT, ParagraphDedupConfig, rebuild, split_units

DATA = Path(__file__).resolve().parents[2] / "data" / "paragraph_dedup"
BODIES = (DATA / "alice_chapter1.txt").read_text(encoding="utf-8").strip().split("\n\n")
LICENCE = (DATA / "gutenberg_licence.txt").read_text(encoding="utf-8").strip()
MENU = "Home\nBooks\nAbout us\nContact"


def page(body: str) -> str:
    """A page as extract gives it: the menu, the body, a blank line, the licence footer."""
    return f"{MENU}\n{body}\n\n{LICENCE}"


def frame(spark, texts: list[str]):
    rows = [
        {
            "id": f"p{i:02d}",
            "url": f"http://books.example/{i}",
            "source": "web",
            "title": "t",
            "text": text,
            "lang": "en",
            "lang_score": 1.0,
            "fetched_at": "2026-01-01",
            "meta": {},
        }
        for i, text in enumerate(texts)
    ]
    return spark.createDataFrame(rows, DOCUMENT_SCHEMA)


def corpus() -> list[str]:
    """p00-p04: five pages, a body each; p05: the menu and the footer only; p06, p07: two pages
    quoting BODIES[5] (two documents: below min_documents); p08-p10: one page crawled three
    times (exact copies count as one document)."""
    pages = [page(body) for body in BODIES[:5]]
    pages.append(f"{MENU}\n{LICENCE}")
    pages += [page(f"{BODIES[5]}\n\n{BODIES[6]}"), page(f"{BODIES[5]}\n\n{BODIES[7]}")]
    return pages + [page(BODIES[7] + "\nThe end.")] * 3


def test_split_then_rebuild_gives_the_text_back_byte_for_byte():
    text = "  Title\r\n\r\n" + BODIES[0] + "\n \n\n    indented line\n" + LICENCE + "\n"
    for unit in ("line", "paragraph"):
        units, separators = split_units(text, unit)
        assert len(separators) == len(units) - 1
        assert rebuild(units, separators, set()) == text
    assert split_units("a\nb\n\nc", "paragraph") == (["a\nb", "c"], ["\n\n"])


def test_rebuild_keeps_the_widest_separator_of_a_removed_run():
    units, separators = split_units("a\nMENU\n\nb\nFOOT", "line")
    assert units == ["a", "MENU", "b", "FOOT"]
    assert rebuild(units, separators, {1}) == "a\n\nb\nFOOT"  # the paragraph break wins
    assert rebuild(units, separators, {0, 3}) == "MENU\n\nb"  # edges: no separator left over
    assert rebuild(units, separators, {0, 1, 2, 3}) == ""


def test_shared_menu_and_footer_go_bodies_come_through_unchanged(spark):
    config = ParagraphDedupConfig()
    texts = corpus()
    rewritten, drops, stats = paragraph_dedup(frame(spark, texts), config)
    out = {r["id"]: r["text"] for r in rewritten.collect()}
    for i, body in enumerate(BODIES[:5]):
        assert out[f"p{i:02d}"] == body
    assert out["p06"] == f"{BODIES[5]}\n\n{BODIES[6]}"  # the two-document quote stays
    assert out["p07"] == f"{BODIES[5]}\n\n{BODIES[7]}"
    for i in (8, 9, 10):  # exact copies: their own lines count once, only boilerplate goes
        assert out[f"p{i:02d}"] == BODIES[7] + "\nThe end."
    # the boilerplate-only page is dropped with its reason and keeps its text in dropped/
    assert {r["id"]: r["drop_reason"] for r in drops.collect()} == {"p05": TOO_SHORT}
    assert out["p05"] == texts[5]
    boiler_lines = MENU.count("\n") + 1 + LICENCE.count("\n") + 1
    lines = sum(t.count("\n") + 1 - t.count("\n\n") for t in texts)  # no empty lines
    # each changed page lost the menu and its line break, the footer and the blank line
    # before it; the dropped page counts all it had
    lost = 10 * len(f"{MENU}\n\n\n{LICENCE}".encode()) + len(texts[5].encode())
    assert stats == {
        "paragraphs_seen": lines,
        "paragraphs_removed": 11 * boiler_lines,
        "paragraph_bytes_removed": lost,
        "paragraph_documents_changed": 11,
    }


def test_case_folding_and_thresholds_are_settings(spark):
    texts = [page(b) for b in BODIES[:3]]
    texts[0] = texts[0].replace("Contact", "CONTACT")
    loose = ParagraphDedupConfig(lowercase=True, min_words_after=0)
    rewritten, _, _ = paragraph_dedup(frame(spark, texts), loose)
    assert all("ontact" not in r["text"].lower() for r in rewritten.collect())
    strict = ParagraphDedupConfig(min_documents=4)
    _, _, stats = paragraph_dedup(frame(spark, texts), strict)
    assert stats["paragraphs_removed"] == 0 and stats["paragraph_documents_changed"] == 0
    long_only = ParagraphDedupConfig(min_chars=12)  # every menu line is shorter
    rewritten, _, stats = paragraph_dedup(frame(spark, [page(b) for b in BODIES[:3]]), long_only)
    assert stats["paragraphs_removed"] == 3 * (LICENCE.count("\n") + 1)
    assert all(r["text"].startswith(MENU + "\n") for r in rewritten.collect())


def test_accounting_holds_through_curate_documents(spark, tmp_path):
    frame(spark, corpus()).write.parquet(str(tmp_path / "in"))
    config = CurateConfig(filters=["length"])
    stats = curate_documents(spark, str(tmp_path / "in"), config, tmp_path / "out")
    dropped = {
        r["id"]: (r["drop_reason"], r["drop_stage"])
        for r in spark.read.parquet(str(tmp_path / "out" / "dropped")).collect()
    }
    assert dropped == {
        "p05": (TOO_SHORT, "paragraph_dedup"),
        "p09": ("exact_duplicate", "exact_dedup"),
        "p10": ("exact_duplicate", "exact_dedup"),
    }
    kept = {
        r["id"]: r["text"] for r in spark.read.parquet(str(tmp_path / "out" / "docs")).collect()
    }
    assert kept["p00"] == BODIES[0] and len(kept) == 8
    assert stats["kept"] + len(dropped) == stats["input"] == 11
    assert stats[f"dropped_{TOO_SHORT}"] == 1
    assert stats["funnel_order"][:3] == ["input", "after_length", "after_paragraph_dedup"]
    assert stats["funnel"]["after_paragraph_dedup"] == 10
    assert stats["paragraph_documents_changed"] == 11
    off = CurateConfig(filters=["length"], paragraph_dedup=ParagraphDedupConfig(enabled=False))
    plain = curate_documents(spark, str(tmp_path / "in"), off, tmp_path / "off")
    assert "after_paragraph_dedup" not in plain["funnel"] and "paragraphs_seen" not in plain


def test_bad_settings_fail_naming_the_key(tmp_path):
    with pytest.raises(SettingError, match=r"curate.paragraph_dedup.min_documents = 1: .*>= 2"):
        ParagraphDedupConfig(min_documents=1)
    with pytest.raises(SettingError, match=r"unit = 'sentence': unit must be one of"):
        ParagraphDedupConfig(unit="sentence")
    with pytest.raises(SettingError, match=r"min_chars = 0"):
        ParagraphDedupConfig(min_chars=0)
    with pytest.raises(ConfigError, match=r"--set: curate\.paragraph_dedup\.min_words_after = -1"):
        load_config(None, ["curate.paragraph_dedup.min_words_after=-1"])
    config = load_config(None, ["curate.paragraph_dedup.unit='paragraph'"])
    assert config.curate.paragraph_dedup.unit == "paragraph"


def test_model_card_lists_the_boilerplate_removed():
    from tasks.register.model_card import data_section

    stats = {"input": 3, "kept": 2, "paragraphs_seen": 40, "paragraphs_removed": 12}
    stats.update(paragraph_bytes_removed=900, paragraph_documents_changed=3)
    card = "\n".join(data_section({"curate": {"fingerprint": "f", "path": "p", "stats": stats}}))
    assert "### Boilerplate removed (paragraph dedup)" in card
    assert "| paragraphs_removed | 12 |" in card and "| paragraph_bytes_removed | 900 |" in card
