"""Decontamination on real data: PIQA and GSM8K items planted inside Gutenberg passages are
found (drop and redact), and the books and pages with nothing planted lose nothing.

The core tests use the committed slices in tests/data (30 PIQA and 30 GSM8K items, the first
chapters of Pride and Prejudice); the shared-corpus tests plant all 300 PIQA and 200 GSM8K
items into passages of three whole books and check 92 news pages (the extraction ground truth).
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from tasks.config import ConfigError, LmforgeConfig, load_config
from tasks.crawl.records import DOCUMENT_SCHEMA
from tasks.curate.curate import curate_documents
from tasks.curate.decontaminate import build_index, decontaminate, redact, word_spans
from tasks.curate.eval_sets import (
    HARNESS_DATA,
    DecontaminateConfig,
    EvalSetFile,
    curate_identity,
    evaluation_sets,
    read_items,
)

DATA = Path(__file__).resolve().parents[2] / "data"
START = re.compile(r"\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG[^\n]*\n")
END = re.compile(r"\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG")


def passages(text: str, min_words: int = 120, max_words: int = 300) -> list[str]:
    """A Gutenberg text's body, paragraphs packed into passages of 120-300 words."""
    text = text.replace("\r\n", "\n").lstrip("\ufeff")
    start, end = START.search(text), END.search(text)
    body = text[start.end() if start else 0 : end.start() if end else len(text)]
    out, current = [], []
    for para in re.split(r"\n\s*\n", body):
        current.extend(para.split())
        if len(current) >= min_words:
            out.append(" ".join(current[:max_words]))
            current = []
    return out


def piqa_choices(folder: Path, out: Path, limit: int | None = None) -> tuple[Path, list[str]]:
    """PIQA as an evaluate.choices JSONL; and each item as planted (goal + the right answer)."""
    goals = [json.loads(line) for line in next(folder.glob("valid.head*.jsonl")).open()]
    labels = [int(x) for x in next(folder.glob("valid-labels.head*.lst")).read_text().split()]
    lines, planted = [], []
    for item, label in list(zip(goals, labels, strict=True))[:limit]:
        choices = [item["sol1"], item["sol2"]]
        lines.append(json.dumps({"context": item["goal"], "choices": choices, "label": label}))
        planted.append(f"{item['goal']} {choices[label]}")
    out.write_text("\n".join(lines) + "\n")
    return out, planted


def gsm8k_items(path: Path) -> list[str]:
    return [f"{r['question']} {r['answer']}" for r in map(json.loads, path.open())]


def plant(passage: str, item: str) -> str:
    """`item` inserted between two words in the middle of `passage`."""
    words = passage.split(" ")
    half = len(words) // 2
    return " ".join(words[:half]) + " " + item + " " + " ".join(words[half:])


def frame(spark, texts: dict[str, str]):
    rows = [
        {
            "id": doc_id,
            "url": f"http://example.org/{doc_id}",
            "source": "book",
            "title": "t",
            "text": text,
            "lang": "en",
            "lang_score": 1.0,
            "fetched_at": "2026-01-01",
            "meta": {},
        }
        for doc_id, text in texts.items()
    ]
    return spark.createDataFrame(rows, DOCUMENT_SCHEMA)


@pytest.fixture(scope="module")
def committed(tmp_path_factory):
    """The committed sets as the pipeline names them, and the planted documents."""
    root = tmp_path_factory.mktemp("decont")
    choices, piqa = piqa_choices(DATA / "evalsets" / "piqa", root / "piqa.jsonl")
    gsm8k_path = DATA / "evalsets" / "gsm8k" / "test.head30.jsonl"
    config = LmforgeConfig()
    config.evaluate.choices = str(choices)
    config.curate.decontaminate.against = [str(gsm8k_path)]
    book = passages((DATA / "books" / "pg1342.head1600.txt").read_text(encoding="utf-8"))
    assert len(book) >= 40
    originals = {f"book{i:03d}": text for i, text in enumerate(book)}
    docs = dict(originals)
    planted, caught = {}, {}
    for i, item in enumerate(piqa[:10] + gsm8k_items(gsm8k_path)[:10]):
        doc_id = f"book{i:03d}"
        docs[doc_id] = planted[doc_id] = plant(book[i], item)
        if len(word_spans(item)) >= DecontaminateConfig().min_item_words:
            caught[doc_id] = planted[doc_id]
    # PIQA's second item ("dresser" + "replace drawer with bobby pin") is too short to index
    assert set(planted) - set(caught) == {"book001"}
    return config, originals, docs, caught


def test_the_evaluation_sets_come_from_the_settings_and_are_hashed(committed, tmp_path):
    config, *_ = committed
    config.finetune.choices = config.evaluate.choices
    config.evaluate.texts = [str(DATA / "books")]
    try:
        sets = {s.name: s for s in evaluation_sets(config)}
    finally:
        config.finetune.choices, config.evaluate.texts = "", []
    assert list(sets) == [
        "evaluate.choices",
        "evaluate.texts[0]",
        "finetune.choices",
        "curate.decontaminate.against[0]",
    ]
    assert sets["evaluate.choices"].used_by == ("evaluate", "harness:lmforge_choices")
    assert sets["evaluate.texts[0]"].used_by == ("evaluate", "harness:lmforge_perplexity")
    assert sets["curate.decontaminate.against[0]"].kind == "records"
    assert len(read_items(sets["evaluate.choices"])) == 60  # each context with each choice
    assert len(read_items(sets["evaluate.texts[0]"])) == 2  # each file is one item
    missing = EvalSetFile("evaluate.sft", str(tmp_path / "none.jsonl"), "sft", ("evaluate",))
    with pytest.raises(FileNotFoundError, match="evaluate.sft = .*none.jsonl"):
        read_items(missing)


def test_the_shipped_harness_tasks_read_the_sets_checked():
    from tasks.evaluate.harness import TASK_DATA

    assert HARNESS_DATA == TASK_DATA


def test_the_fingerprinted_identity_follows_the_evaluation_files(committed, tmp_path):
    config, *_ = committed
    copy = tmp_path / "gsm8k.jsonl"
    copy.write_bytes((DATA / "evalsets" / "gsm8k" / "test.head30.jsonl").read_bytes())
    config.curate.decontaminate.against = [str(copy)]
    try:
        before, _ = curate_identity(config)
        copy.write_text(copy.read_text() + '{"question": "one more", "answer": "#### 1"}\n')
        after, _ = curate_identity(config)
        config.curate.decontaminate.enabled = False
        off, sets = curate_identity(config)
    finally:
        config.curate.decontaminate.against = [str(DATA / "evalsets/gsm8k/test.head30.jsonl")]
        config.curate.decontaminate.enabled = True
    assert before["evaluation_sets"] != after["evaluation_sets"]
    assert set(before["evaluation_sets"]) == {"evaluate.choices", "curate.decontaminate.against[0]"}
    assert "evaluation_sets" not in off and sets == []


def test_the_index_counts_items_ngrams_and_short_items(committed):
    config, *_ = committed
    index = build_index(evaluation_sets(config), DecontaminateConfig())
    piqa, gsm8k = index.sets
    assert piqa["items"] == 60 and gsm8k["items"] == 30
    assert piqa["ngrams"] > 500 and gsm8k["ngrams"] > 2000
    assert piqa["items_whole"] + piqa["items_skipped"] > 0  # some pairs are under 13 words
    assert len(piqa["sha256"]) == 64
    assert index.lengths[-1] == 13 and all(8 <= n <= 13 for n in index.lengths)


def test_planted_items_are_dropped_and_the_rest_is_untouched(spark, committed):
    config, originals, docs, planted = committed
    index = build_index(evaluation_sets(config), config.curate.decontaminate)
    result = decontaminate(frame(spark, docs), index, DecontaminateConfig())
    try:
        drops = {r["id"]: r["drop_reason"] for r in result.drops.collect()}
        kept = {r["id"]: r["text"] for r in result.documents.collect()}
    finally:
        result.unpersist()
    assert drops == {doc_id: "contaminated" for doc_id in planted}
    assert kept == docs  # the stage marks drops; it rewrites nothing
    per_set = {s["name"]: s["documents_contaminated"] for s in result.stats["sets"]}
    assert per_set == {"evaluate.choices": 9, "curate.decontaminate.against[0]": 10}
    assert result.stats["documents_contaminated"] == 19


def test_redaction_cuts_exactly_the_planted_items(spark, committed):
    config, originals, docs, planted = committed
    index = build_index(evaluation_sets(config), config.curate.decontaminate)
    settings = DecontaminateConfig(action="redact")
    result = decontaminate(frame(spark, docs), index, settings)
    try:
        texts = {r["id"]: r["text"] for r in result.documents.collect()}
        assert result.drops.count() == 0
        again = decontaminate(result.documents, index, settings)
        assert again.stats["documents_contaminated"] == 0
        again.unpersist()
    finally:
        result.unpersist()
    # each planted item cut out, the passage as it was (the short one stays where it is)
    assert texts == {**originals, "book001": docs["book001"]}
    assert result.stats["documents_redacted"] == 19
    assert result.stats["spans_redacted"] == 19
    assert result.stats["ngrams_matched"] > 19 * 13


def test_a_document_left_too_short_is_dropped_with_its_own_reason(spark, committed):
    config, _, docs, planted = committed
    index = build_index(evaluation_sets(config), config.curate.decontaminate)
    settings = DecontaminateConfig(action="redact", min_words_after_redact=10_000)
    result = decontaminate(frame(spark, docs), index, settings)
    try:
        drops = {r["id"]: r["drop_reason"] for r in result.drops.collect()}
    finally:
        result.unpersist()
    assert drops == {doc_id: "redacted_too_short" for doc_id in planted}
    assert result.stats["documents_redacted"] == 0


def test_short_items_are_found_whole_from_min_item_words(spark, tmp_path):
    path = tmp_path / "short.jsonl"
    items = [
        "Put the kettle on the stove and wait.",  # 8 words: one 8-gram
        "Open the door.",  # 3 words: skipped
    ]
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in items))
    sets = [EvalSetFile("curate.decontaminate.against[0]", str(path), "records", ("curate",))]
    index = build_index(sets, DecontaminateConfig())
    assert index.sets[0]["items_whole"] == 1 and index.sets[0]["items_skipped"] == 1
    docs = {
        "hit": "She said: put the KETTLE on the stove, and wait! Then she left.",
        "part": "Put the kettle on the stove and then leave it.",
        "door": "Open the door. Open the door.",
    }
    result = decontaminate(frame(spark, docs), index, DecontaminateConfig())
    try:
        assert [r["id"] for r in result.drops.collect()] == ["hit"]
    finally:
        result.unpersist()


def test_redact_removes_the_words_and_their_punctuation():
    text = "Alpha beta. “Gamma delta epsilon,” said zeta.\n\nEta theta."
    assert [w for _, _, w in word_spans("Ça VA, l'été")] == ["ca", "va", "l", "ete"]
    assert redact(text, [(2, 3)]) == ("Alpha beta. said zeta.\n\nEta theta.", 1, 6)
    assert redact(text, [(4, 2), (5, 2)]) == ("Alpha beta. “Gamma delta\n\nEta theta.", 1, 6)
    assert redact(text, [(0, 2)])[0] == "“Gamma delta epsilon,” said zeta.\n\nEta theta."


def test_the_curate_step_runs_the_stage_after_near_dedup(spark, committed, tmp_path):
    config, originals, docs, planted = committed
    uri = str(tmp_path / "in")
    frame(spark, docs).write.parquet(uri)
    settings = dataclasses.replace(config.curate, filters=["length"])
    stats = curate_documents(spark, uri, settings, tmp_path / "out", evaluation_sets(config))
    assert stats["dropped_contaminated"] == len(planted)
    assert stats["kept"] == len(docs) - len(planted)
    assert stats["funnel_order"][-2:] == ["after_decontaminate", "kept"]
    assert stats["funnel"]["after_near_dedup"] - stats["funnel"]["after_decontaminate"] == 19
    assert stats["decontaminate_documents_contaminated"] == 19
    checked = {s["name"]: s["documents_contaminated"] for s in stats["decontamination"]["sets"]}
    assert checked == {"evaluate.choices": 9, "curate.decontaminate.against[0]": 10}
    dropped = spark.read.parquet(str(tmp_path / "out" / "dropped")).collect()
    assert {r["id"]: r["drop_stage"] for r in dropped} == dict.fromkeys(planted, "decontaminate")
    assert {r["id"]: r["text"] for r in dropped} == planted  # dropped/ keeps the text as it was


def test_the_settings_are_checked():
    config = load_config(
        None, ["curate.decontaminate.action='redact'", "curate.decontaminate.ngram=8"]
    )
    assert config.curate.decontaminate.action == "redact"
    with pytest.raises(ConfigError, match="curate.decontaminate.action = 'cut'"):
        load_config(None, ["curate.decontaminate.action='cut'"])
    with pytest.raises(ConfigError, match="min_item_words must be <= ngram = 5"):
        load_config(None, ["curate.decontaminate.ngram=5"])
    with pytest.raises(ConfigError, match="renamed to 'curate.decontaminate.against'"):
        load_config(None, ["curate.decontaminate_against=['a.jsonl']"])


def test_every_piqa_and_gsm8k_item_is_found_in_whole_books(spark, shared_corpus, tmp_path):
    books = shared_corpus / "books"
    book = [
        p
        for name in ("pg1342.txt", "pg1661.txt", "11-0.txt")
        for p in passages((books / name).read_text(encoding="utf-8"))
    ]
    choices, piqa = piqa_choices(shared_corpus / "evalsets" / "piqa", tmp_path / "piqa.jsonl")
    gsm8k_path = shared_corpus / "evalsets" / "gsm8k" / "test.head200.jsonl"
    sets = [
        EvalSetFile("evaluate.choices", str(choices), "choices", ("evaluate",)),
        EvalSetFile("curate.decontaminate.against[0]", str(gsm8k_path), "records", ("curate",)),
    ]
    index = build_index(sets, DecontaminateConfig())
    items = piqa + gsm8k_items(gsm8k_path)
    assert len(book) > len(items) == 500
    docs = {f"p{i:04d}": text for i, text in enumerate(book)}
    planted = {f"p{i:04d}": plant(book[i], item) for i, item in enumerate(items)}
    pages = json.loads((shared_corpus / "extraction" / "ground-truth.json").read_text())
    docs |= {f"w{key[:12]}": page["articleBody"] for key, page in pages.items()}
    docs["shakespeare"] = (books / "tinyshakespeare.txt").read_text(encoding="utf-8")
    clean = decontaminate(frame(spark, docs), index, DecontaminateConfig())
    dirty = decontaminate(frame(spark, docs | planted), index, DecontaminateConfig())
    try:
        assert clean.drops.count() == 0  # three books, 92 news pages, Shakespeare: no match
        found = {r["id"] for r in dirty.drops.collect()}
    finally:
        clean.unpersist()
        dirty.unpersist()
    # all but the items too short to index (a one-word PIQA goal with a short answer)
    short = {
        doc_id for doc_id, item in zip(planted, items, strict=True) if len(word_spans(item)) < 8
    }
    assert found == set(planted) - short
    assert len(short) <= 20  # 16 of the 300 PIQA answers with their goal are under 8 words
