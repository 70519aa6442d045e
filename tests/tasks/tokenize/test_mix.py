"""`tokenize.mix`: the train tokens each source gets, read back from the shards, match its
weight; validation is not mixed; bad weights are refused clearly."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import feedparser
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from model.token_format import read_documents
from model.tokenizer import load_tokenizer
from tasks.config import ConfigError, TokenizeConfig, load_config
from tasks.register.model_card import mix_lines
from tasks.tokenize.shards import write_shards
from tests.tasks.tokenize.conftest import doc_id, save_tokenizer_file

DATA = Path(__file__).resolve().parents[2] / "data"
WEIGHTS = {"web": 0.5, "news": 0.3, "book": 0.2}


def real_texts() -> dict[str, list[str]]:
    """Three real sources of different sizes: Pride and Prejudice's paragraphs (book), the
    livemint feed's item summaries (news), the UDHR's paragraphs in five languages (web)."""
    book = (DATA / "books" / "pg1342.head1600.txt").read_text(encoding="utf-8")
    paragraphs = [" ".join(p.split()) for p in book.split("\n\n")]
    feed = feedparser.parse((DATA / "feeds" / "livemint.xml").read_bytes())
    web = []
    for lang in ["eng", "fra", "deu_1996", "rus", "tur"]:
        html = (DATA / "multilingual" / f"{lang}.html").read_text(encoding="utf-8")
        web += [re.sub(r"<[^>]+>", "", p).strip() for p in re.findall(r"<p>(.*?)</p>", html, re.S)]
    texts = {
        "book": [p for p in paragraphs if len(p) > 200],
        "news": [e.summary for e in feed.entries if len(e.summary) > 40],
        "web": [p for p in web if len(p) > 40],
    }
    return {source: list(dict.fromkeys(items)) for source, items in texts.items()}


@pytest.fixture(scope="module")
def mixed(spark, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("mix")
    texts = real_texts()
    rows = [(s, f"https://{s}.example/{i}", t) for s, ts in texts.items() for i, t in enumerate(ts)]
    table = pa.table(
        {
            "id": [doc_id(url) for _, url, _ in rows],
            "url": [url for _, url, _ in rows],
            "source": [s for s, _, _ in rows],
            "text": [t for _, _, t in rows],
        }
    )
    (root / "docs").mkdir()
    pq.write_table(table, root / "docs" / "part-00000.parquet")
    tokenizer = save_tokenizer_file(root / "tokenizer.json", [t for _, _, t in rows], 600)
    config = TokenizeConfig(val_fraction=0.1, shard_tokens=20_000, mix=WEIGHTS, shuffle=True)
    stats = write_shards(spark, str(root / "docs"), tokenizer, config, root / "out")
    natural = write_shards(
        spark, str(root / "docs"), tokenizer, TokenizeConfig(val_fraction=0.1), root / "natural"
    )
    source_of = {t: s for s, _, t in rows}
    return {"root": root, "stats": stats, "natural": natural, "source_of": source_of}


def tokens_by_source(folder: Path, source_of: dict[str, str], split: str) -> Counter[str]:
    """Tokens (end-of-text included) per source of `split`, decoded from the shards."""
    tokenizer = load_tokenizer(folder.parent / "tokenizer.json")
    manifest = json.loads((folder / "manifest.json").read_text())
    got: Counter[str] = Counter()
    for entry in manifest["shards"]:
        if entry["split"] == split:
            for doc in read_documents(folder / entry["file"]):
                got[source_of[tokenizer.decode(doc)]] += len(doc) + 1
    return got


def test_each_source_gets_its_weight_of_the_train_tokens(mixed: dict) -> None:
    out = mixed["root"] / "out"
    got = tokens_by_source(out, mixed["source_of"], "train")
    total = sum(got.values())
    for source, weight in WEIGHTS.items():
        assert abs(got[source] / total - weight) <= 0.02, (source, got[source] / total)
    record = json.loads((out / "manifest.json").read_text())["mix"]["sources"]
    assert {s: r["tokens"] for s, r in record.items()} == dict(got)
    natural = tokens_by_source(mixed["root"] / "natural", mixed["source_of"], "train")
    assert {s: r["tokens_natural"] for s, r in record.items()} == dict(natural)
    # the feed's few items are up-sampled, the book's many paragraphs down-sampled
    assert record["news"]["epochs"] > 1 and record["book"]["epochs"] < 1
    assert record["news"]["docs"] > record["news"]["docs_natural"]
    assert mixed["stats"]["mix"] == json.loads((out / "manifest.json").read_text())["mix"]


def test_validation_is_not_mixed(mixed: dict) -> None:
    mixed_val = tokens_by_source(mixed["root"] / "out", mixed["source_of"], "val")
    natural_val = tokens_by_source(mixed["root"] / "natural", mixed["source_of"], "val")
    assert mixed_val == natural_val and sum(mixed_val.values()) > 0


def test_the_model_card_shows_the_mix(mixed: dict) -> None:
    lines = "\n".join(mix_lines(mixed["stats"]["mix"]))
    assert "| news | 0.3000 | " in lines and "epochs" in lines


def test_bad_mixes_are_refused_with_the_setting_named(spark, mixed: dict) -> None:
    root = mixed["root"]
    with pytest.raises(ConfigError, match="unknown source"):
        load_config(None, ["tokenize.mix={blog=1}"])
    missing = TokenizeConfig(val_fraction=0.1, mix={"web": 1.0, "book": 1.0})
    with pytest.raises(ValueError, match=r"tokenize.mix has no weight for source\(s\) \['news'\]"):
        write_shards(spark, str(root / "docs"), root / "tokenizer.json", missing, root / "bad1")
    empty = TokenizeConfig(val_fraction=0.1, mix={**WEIGHTS, "social": 1.0})
    with pytest.raises(ValueError, match=r"weights source\(s\) \['social'\], which have no train"):
        write_shards(spark, str(root / "docs"), root / "tokenizer.json", empty, root / "bad2")
