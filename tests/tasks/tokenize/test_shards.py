"""Token shards written by Spark: exact decode back to the input, determinism, the split rule."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from model.data import TokenDataset
from model.token_format import HEADER_BYTES, read_documents, read_header
from model.tokenizer import load_tokenizer
from tasks.config import TokenizeConfig
from tasks.tokenize.bpe import train_tokenizer
from tasks.tokenize.shards import write_shards
from tasks.tokenize.split import split_of

DocsWriter = Callable[[Path, list[str]], str]

TEXTS = [
    f"Doc {i}: {body}"
    for i, body in enumerate(
        [
            "The quick brown fox jumps over the lazy dog.\r\nSecond line.",
            "naïve café — Straße 日本語 🎉🚀",
            "quoted <|endoftext|> must stay text, and so must <|user|>",
            "   spaces   and\ttabs\n\n\n",
            "short",
        ]
        * 8
    )
]
CONFIG = TokenizeConfig(
    vocab_size=300, min_frequency=2, train_docs=100, val_fraction=0.25, shard_tokens=120
)


@pytest.fixture(scope="module")
def corpus(spark, tmp_path_factory: pytest.TempPathFactory, write_docs: DocsWriter) -> dict:
    """Documents, a tokenizer and two independent shard runs over them."""
    root = tmp_path_factory.mktemp("shards")
    docs = write_docs(root / "docs", TEXTS)
    tokenizer = root / "tokenizer.json"
    train_tokenizer(spark, docs, CONFIG, tokenizer)
    runs = [root / "run1", root / "run2"]
    stats = [write_shards(spark, docs, tokenizer, CONFIG, run) for run in runs]
    pairs = [(row.id, row.text) for row in spark.read.parquet(docs).collect()]
    return {"docs": docs, "tokenizer": tokenizer, "runs": runs, "stats": stats, "pairs": pairs}


def manifest(run: Path) -> dict:
    return json.loads((run / "manifest.json").read_text())


def test_shards_decode_back_to_the_input_texts(corpus: dict) -> None:
    tokenizer = load_tokenizer(corpus["tokenizer"])
    run = corpus["runs"][0]
    id_of = {text: doc_id for doc_id, text in corpus["pairs"]}
    decoded: dict[str, list[str]] = {"train": [], "val": []}
    for entry in manifest(run)["shards"]:
        texts = [tokenizer.decode(d) for d in read_documents(run / entry["file"])]
        assert len(texts) == entry["docs"]
        ids = [id_of[text] for text in texts]
        assert ids == sorted(ids)  # documents are ordered by id within a shard
        decoded[entry["split"]] += texts
    threshold = manifest(run)["split_rule"]["val_threshold"]
    expected: dict[str, list[str]] = {"train": [], "val": []}
    for doc_id, text in corpus["pairs"]:
        expected[split_of(doc_id, threshold)].append(text)
    assert expected["val"] and expected["train"]
    assert sorted(decoded["train"]) == sorted(expected["train"])
    assert sorted(decoded["val"]) == sorted(expected["val"])


def test_every_document_ends_with_one_end_of_text(corpus: dict) -> None:
    data = TokenDataset(corpus["runs"][0], "train")
    documents = list(data.documents())
    assert len(documents) == manifest(corpus["runs"][0])["totals"]["train"]["docs"]
    assert all(data.eot_id not in doc for doc in documents)  # quoted <|endoftext|> stays text
    eot_count = sum(int((tokens == data.eot_id).sum()) for tokens in data.tokens)
    assert eot_count == len(documents)


def test_manifest_describes_the_shards(corpus: dict) -> None:
    run, stats = corpus["runs"][0], corpus["stats"][0]
    info = manifest(run)
    assert info["dtype"] == "uint16" and info["token_bytes"] == 2
    assert info["split_rule"]["val_threshold"] == 2500
    assert "% 10000 < 2500" in info["split_rule"]["rule"]
    assert stats["docs"] == len(TEXTS) and stats["shards"] == len(info["shards"])
    for split in ("train", "val"):
        entries = [e for e in info["shards"] if e["split"] == split]
        assert info["totals"][split]["tokens"] == sum(e["tokens"] for e in entries)
        assert stats["splits"][split] == info["totals"][split]
    for entry in info["shards"]:
        header = read_header(run / entry["file"])
        assert (header.num_tokens, header.num_docs) == (entry["tokens"], entry["docs"])
        assert (run / entry["file"]).stat().st_size == HEADER_BYTES + 2 * entry["tokens"]
        assert entry["file"].startswith(f"{entry['split']}-p0000")
    assert len(info["shards"]) > 2  # shard_tokens=120 forces several shards per partition
    assert not list(run.glob(".*"))  # no temporary files left behind


def test_two_runs_write_identical_shards(corpus: dict) -> None:
    first, second = (manifest(run) for run in corpus["runs"])
    assert first == second
    for entry in first["shards"]:
        a, b = ((run / entry["file"]).read_bytes() for run in corpus["runs"])
        assert a == b


def test_loader_reads_the_written_shards(corpus: dict) -> None:
    data = TokenDataset(corpus["runs"][0], "val")
    assert data.num_tokens == manifest(corpus["runs"][0])["totals"]["val"]["tokens"]
    x, y = next(data.sequential_batches(batch_size=2, block_size=8))
    assert x.shape[1] == 8 and (x[:, 1:] == y[:, :-1]).all()


def test_bad_val_fraction_is_refused_when_the_config_is_built(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="val_fraction"):  # before any shard is written
        TokenizeConfig(val_fraction=1.0)
    assert not any(tmp_path.iterdir())


def test_a_large_corpus_gets_more_partitions(
    spark, tmp_path: Path, write_docs: DocsWriter, corpus: dict
) -> None:
    """One hash partition per `partition_mb` MB of text (from the Parquet footers), never fewer
    than `partitions`; the shards still hold every document once."""
    from tasks.tokenize.shards import effective_partitions, text_bytes

    texts = [f"doc {i} " + "word " * 60_000 for i in range(9)]  # 9 x ~300 kB = ~2.7 MB
    docs = write_docs(tmp_path / "docs", texts)
    assert text_bytes(spark, docs) >= sum(len(t) for t in texts)
    config = TokenizeConfig(val_fraction=0.0, shard_tokens=10**9, partitions=2, partition_mb=1)
    assert effective_partitions(spark, docs, config) == 3
    assert effective_partitions(spark, corpus["docs"], config) == 2
    stats = write_shards(spark, docs, corpus["tokenizer"], config, tmp_path / "out")
    rule = manifest(tmp_path / "out")["order"]["rule"]
    assert "* 3 >> 32" in rule
    assert stats["docs"] == len(texts)


def test_partition_keys_land_each_layout_partition_in_its_own_spark_partition(spark) -> None:
    """Repartitioning by the key of layout partition p puts it in Spark partition p."""
    from pyspark.sql import functions as F

    from tasks.tokenize.shards import partition_keys

    for n in (1, 3, 7):
        keys = partition_keys(spark, n)
        rows = spark.createDataFrame([(p, keys[p]) for p in range(n)], "part int, key int")
        placed = rows.repartition(n, "key").select("part", F.spark_partition_id().alias("at"))
        assert sorted((r.part, r.at) for r in placed.collect()) == [(p, p) for p in range(n)]


def test_a_worker_builds_its_tokenizer_once(corpus: dict) -> None:
    """Tasks in one Python worker share one tokenizer (a fresh one per task slowed later tasks);
    it encodes special-token text as text."""
    from tasks.tokenize.shard_writer import worker_tokenizer

    tokenizer_json = Path(corpus["tokenizer"]).read_text(encoding="utf-8")
    first = worker_tokenizer(tokenizer_json)
    same_text = (tokenizer_json + " ")[:-1]  # equal, but another object (as each task gets)
    assert same_text is not tokenizer_json
    assert worker_tokenizer(same_text) is first and first.encode_special_tokens
    eot = first.token_to_id("<|endoftext|>")
    assert eot not in first.encode("a <|endoftext|> b").ids
