"""The fastText quality classifier on real labelled pages (tests/data/quality): training and
scoring, determinism, bad input, and the curate stage through curate_documents."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pytest

from model.config import SettingError
from tasks.config import CurateConfig
from tasks.crawl.records import DOCUMENT_SCHEMA
from tasks.curate.curate import curate_documents
from tasks.curate.quality import MODEL_FILE
from tasks.curate.quality_classifier import (
    QualityConfig,
    file_sha256,
    load_quality_model,
    normalize,
    quality_scores,
    read_reference,
    reference_sha256,
    train_quality_model,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "quality"
# small enough to train in a second or two on 28 pages; the benchmark uses the defaults
FAST = dict(epoch=50, lr=0.5, dim=10)


def load_sample() -> tuple[dict[str, str], dict[str, str]]:
    """(id -> gold article body, id -> whole visible page text) of the 40 sample pages."""
    gold = json.loads(gzip.decompress((DATA / "ground-truth.json.gz").read_bytes()))
    page = json.loads(gzip.decompress((DATA / "html-text.json.gz").read_bytes()))["output"]
    return (
        {k: v["articleBody"] for k, v in gold.items()},
        {k: v["articleBody"] for k, v in page.items()},
    )


def roc_auc(positives: list[float], negatives: list[float]) -> float:
    """Share of (positive, negative) pairs ranked right, ties half: the ROC AUC."""
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


@pytest.fixture(scope="module")
def split() -> tuple[list[str], list[str]]:
    ids = sorted(load_sample()[0])
    random.Random(0).shuffle(ids)
    return ids[:28], ids[28:]


def test_normalize_is_dclms_with_line_breaks_as_a_token():
    assert normalize("  The Cat\n\nsat\t ON  the mat.\n") == "the cat __nl__ sat on the mat."
    assert "\n" not in normalize("a\nb\r\nc")  # one fastText example per text


def test_held_out_article_bodies_score_above_whole_pages(tmp_path, split):
    gold, page = load_sample()
    train, test = split
    config = QualityConfig(**FAST)
    stats = train_quality_model(
        [gold[k] for k in train], [page[k] for k in train], config, tmp_path / "m.bin"
    )
    assert stats["positives"] == 28 and stats["negatives"] == 28
    assert stats["sha256"] == file_sha256(tmp_path / "m.bin")
    model = load_quality_model(tmp_path / "m.bin")
    pos = quality_scores(model, [gold[k] for k in test])
    neg = quality_scores(model, [page[k] for k in test])
    assert all(0.0 <= s <= 1.0 for s in pos + neg)
    # 12 held-out pages of other sites: the body alone reads more like a body than the page
    assert roc_auc(pos, neg) >= 0.8, (pos, neg)


def test_same_seed_same_model_and_scores(tmp_path, split):
    gold, page = load_sample()
    train, test = split
    positives, negatives = [gold[k] for k in train], [page[k] for k in train]
    runs = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        config = QualityConfig(**FAST, seed=seed)
        stats = train_quality_model(positives, negatives, config, tmp_path / f"{name}.bin")
        model = load_quality_model(tmp_path / f"{name}.bin")
        runs.append((stats["sha256"], quality_scores(model, [page[k] for k in test])))
    assert runs[0] == runs[1]
    assert runs[0][0] != runs[2][0]


def test_reference_readers_and_their_errors(spark, tmp_path):
    folder = tmp_path / "ref"
    folder.mkdir()
    (folder / "a.txt").write_text("First Text.\n")
    (folder / "b.jsonl").write_text('{"text": "second"}\n\n{"text": "Third  one"}\n')
    spark.createDataFrame([("fourth",)], "text string").write.parquet(str(folder / "pq"))
    assert read_reference(str(folder)) == ["first text.", "second", "third one", "fourth"]
    assert len(reference_sha256(str(folder))) == 64

    with pytest.raises(FileNotFoundError, match=r"curate\.quality\.reference = .*no such file"):
        read_reference(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no \.txt, \.jsonl or \.parquet file"):
        read_reference(str(tmp_path / "empty"))
    (tmp_path / "blank").mkdir()
    (tmp_path / "blank" / "a.txt").write_text(" \n\n")
    with pytest.raises(ValueError, match="hold no text"):
        read_reference(str(tmp_path / "blank"))
    (tmp_path / "bad.jsonl").write_text('{"body": "x"}\n')
    with pytest.raises(ValueError, match=r'not JSON lines of \{"text"'):
        read_reference(str(tmp_path / "bad.jsonl"))


def test_bad_settings_are_refused():
    with pytest.raises(SettingError, match=r"curate\.quality\.reference = '': .*trusted text"):
        QualityConfig(enabled=True)
    with pytest.raises(SettingError, match="either curate.quality.threshold or .*not both"):
        QualityConfig(threshold=0.5, keep_top_fraction=0.3)
    with pytest.raises(SettingError, match=r"keep_top_fraction must be in \[0, 1\]"):
        QualityConfig(keep_top_fraction=1.5)
    with pytest.raises(ValueError, match="training needs both"):
        train_quality_model(["some text"], ["", "  "], QualityConfig(), Path("unused.bin"))


def _write_docs(spark, path: Path, texts: dict[str, str]) -> str:
    rows = [
        {
            "id": key,
            "url": f"http://example.org/{key}",
            "source": "web",
            "title": "t",
            "text": text,
            "lang": "en",
            "lang_score": 1.0,
            "fetched_at": "2026-01-01",
            "meta": {"quality_score": "stale"} if i == 0 else {"kept": "yes"},
        }
        for i, (key, text) in enumerate(sorted(texts.items()))
    ]
    spark.createDataFrame(rows, DOCUMENT_SCHEMA).write.parquet(str(path))
    return str(path)


def test_curate_scores_every_document_and_drops_the_lowest(spark, tmp_path, split):
    gold, page = load_sample()
    train, test = split
    reference = tmp_path / "reference"
    reference.mkdir()
    for key in train:
        (reference / f"{key}.txt").write_text(gold[key])
    # the crawl: the held-out pages' whole text, and the bodies of half of them
    crawl = {f"page-{k}": page[k] for k in test} | {f"body-{k}": gold[k] for k in test[:6]}
    docs_uri = _write_docs(spark, tmp_path / "in", crawl)
    quality = QualityConfig(enabled=True, reference=str(reference), keep_top_fraction=0.5, **FAST)
    config = CurateConfig(filters=[], quality=quality)
    out = tmp_path / "out"
    out.mkdir()
    stats = curate_documents(spark, docs_uri, config, out)

    kept = {r["id"]: r for r in spark.read.parquet(str(out / "docs")).collect()}
    dropped = {r["id"]: r for r in spark.read.parquet(str(out / "dropped")).collect()}
    assert len(kept) + len(dropped) == len(crawl) == stats["input"]
    low = {k for k, r in dropped.items() if r["drop_reason"] == "low_quality"}
    assert {r["drop_stage"] for k, r in dropped.items() if k in low} == {"quality"}
    assert stats["dropped_low_quality"] == len(low) > 0
    assert stats["funnel"]["after_quality"] == stats["kept"] == len(kept)
    assert stats["funnel_order"][-2:] == ["after_quality", "kept"]
    # keep_top_fraction 0.5: about half of what reached the stage, the higher-scored half
    reached = stats["funnel"]["after_near_dedup"]
    assert abs(len(kept) - reached / 2) <= 1
    # every document that reached the stage has its score, earlier drops have none
    scored = {**kept, **{k: dropped[k] for k in low}}
    assert all("quality_score" not in r["meta"] for k, r in dropped.items() if k not in low)
    score = {k: float(r["meta"]["quality_score"]) for k, r in scored.items()}
    assert min(score[k] for k in kept) >= max(score[k] for k in low)
    assert stats["quality_cutoff"] == pytest.approx(min(score[k] for k in kept), abs=1e-6)
    # a stale score is replaced, other meta entries stay
    stale = min(crawl)
    metas = {k: r["meta"] for k, r in scored.items()}
    assert metas[stale] == {"quality_score": f"{score[stale]:.6f}"}
    assert all(m["kept"] == "yes" and len(m) == 2 for k, m in metas.items() if k != stale)
    # the artifact: the model file in the output, named by its sha256 in the stats
    assert stats["quality_model_sha256"] == file_sha256(out / MODEL_FILE)
    assert stats["quality_train_positives"] == len(train)
    assert stats["quality_train_negatives"] == min(len(train), reached)  # ratio 1, or all
    # a page's body alone scores above its whole text (all of it were negatives here)
    bodies = [k for k in score if k.startswith("body-") and f"page-{k[5:]}" in score]
    pairs = [(score[k], score[f"page-{k[5:]}"]) for k in bodies]
    assert pairs and sum(b > p for b, p in pairs) >= len(pairs) - 1, pairs


def test_model_card_names_the_classifier_artifact():
    from tasks.register.model_card import data_section

    stats = {"quality_model_sha256": "ab" * 32, "quality_train_positives": 3}
    lines = data_section({"curate": {"fingerprint": "f", "path": "p", "stats": stats}})
    assert any("ab" * 32 in line and "3 reference" in line for line in lines)
