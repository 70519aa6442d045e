"""Shard writing at the edges: empty and id-less documents, a document longer than a shard,
invalid UTF-8 in Parquet, a corpus too small for one window, the seeded global shuffle."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from model.data import TokenDataset
from model.token_format import ShardFormatError, read_documents
from model.tokenizer import load_tokenizer
from tasks.config import TokenizeConfig
from tasks.tokenize.bpe import use_tokenizer_file
from tasks.tokenize.shards import write_shards

GOOD = [f"Document {i}: the shard writer keeps every byte, naïve café 🎉." for i in range(24)]
LONG = "a long document " * 150  # ~300 tokens, more than shard_tokens
INVALID = b"bad \xff\xfe bytes and an encoded lone surrogate \xed\xa0\x80 end"
REPLACED = "bad \ufffd\ufffd bytes and an encoded lone surrogate \ufffd\ufffd\ufffd end"
CONFIG = TokenizeConfig(val_fraction=0.2, shard_tokens=100, partitions=2)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_raw_docs(folder: Path, rows: list[tuple[str | None, bytes | None]]) -> str:
    """Parquet with a string `text` column holding exactly these bytes (even invalid UTF-8)."""
    ids = pa.array([r[0] for r in rows], pa.string())
    texts = pa.array([r[1] for r in rows], pa.binary()).view(pa.string())  # no UTF-8 check
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"id": ids, "text": texts}), folder / "part-0.parquet")
    return str(folder)


@pytest.fixture(scope="module")
def runs(spark, tmp_path_factory: pytest.TempPathFactory, save_tokenizer) -> dict:
    """One corpus with every edge case, written in id order and with a seeded shuffle."""
    root = tmp_path_factory.mktemp("edges")
    save_tokenizer(root / "given.json", GOOD + [LONG])
    use_tokenizer_file(root / "given.json", root / "tokenizer.json")
    good = [(sha(t), t.encode()) for t in [*GOOD, LONG]]
    odd = [(sha("e1"), b""), (sha("e2"), b""), (sha("e3"), None), (None, b"no id")]
    docs = write_raw_docs(root / "docs", [*good, *odd, (sha("bad"), INVALID)])
    shuffled = TokenizeConfig(**{**CONFIG.__dict__, "shuffle": True, "shuffle_seed": 7})
    stats = {
        name: write_shards(spark, docs, root / "tokenizer.json", config, root / name)
        for name, config in (("plain", CONFIG), ("shuffled", shuffled))
    }
    expected = {doc_id: raw.decode() for doc_id, raw in good} | {sha("bad"): REPLACED}
    return {"root": root, "stats": stats, "expected": expected}


def decoded(run: Path, tokenizer_path: Path) -> list[tuple[str, str]]:
    """(split, text) of every document, shard by shard in manifest order."""
    tokenizer = load_tokenizer(tokenizer_path)
    manifest = json.loads((run / "manifest.json").read_text())
    return [
        (entry["split"], tokenizer.decode(doc))
        for entry in manifest["shards"]
        for doc in read_documents(run / entry["file"])
    ]


def test_skipped_documents_are_counted(runs: dict) -> None:
    stats = runs["stats"]["plain"]
    assert stats["docs"] == len(runs["expected"])  # 25 good + the invalid one
    assert (stats["skipped_empty"], stats["skipped_no_id"]) == (3, 1)
    assert (stats["invalid_utf8_docs"], stats["oversized_docs"]) == (1, 1)


def test_every_kept_document_decodes_exactly(runs: dict) -> None:
    texts = [text for _, text in decoded(runs["root"] / "plain", runs["root"] / "tokenizer.json")]
    assert sorted(texts) == sorted(runs["expected"].values())


def test_a_document_longer_than_a_shard_gets_its_own_shard(runs: dict) -> None:
    manifest = json.loads((runs["root"] / "plain" / "manifest.json").read_text())
    big = [e for e in manifest["shards"] if e["tokens"] > CONFIG.shard_tokens]
    assert len(big) == 1 and big[0]["docs"] == 1
    tokenizer = load_tokenizer(runs["root"] / "tokenizer.json")
    (only,) = read_documents(runs["root"] / "plain" / big[0]["file"])
    assert tokenizer.decode(only) == LONG


def test_shuffle_is_one_seeded_global_order(runs: dict) -> None:
    run = runs["root"] / "shuffled"
    order = json.loads((run / "manifest.json").read_text())["order"]
    assert order["shuffle"] is True and order["shuffle_seed"] == 7
    id_of = {text: doc_id for doc_id, text in runs["expected"].items()}
    for split in ("train", "val"):
        ids = [id_of[t] for s, t in decoded(run, runs["root"] / "tokenizer.json") if s == split]
        assert ids == sorted(ids, key=lambda i: hashlib.sha256(f"7:{i}".encode()).hexdigest())
    plain = decoded(runs["root"] / "plain", runs["root"] / "tokenizer.json")
    assert sorted(plain) == sorted(decoded(run, runs["root"] / "tokenizer.json")) != plain


def test_a_corpus_smaller_than_one_window_is_a_clear_error(runs: dict) -> None:
    data = TokenDataset(runs["root"] / "plain", "val")
    too_big = data.num_tokens + 10
    with pytest.raises(ShardFormatError, match=f"block_size {too_big} needs {too_big + 1}"):
        data.random_batches(batch_size=2, block_size=too_big, seed=0)


def test_only_empty_documents_is_a_clear_error(spark, runs: dict, tmp_path: Path) -> None:
    docs = write_raw_docs(tmp_path / "docs", [(sha("a"), b""), (sha("b"), None)])
    with pytest.raises(ValueError, match="no documents with text in"):
        write_shards(spark, docs, runs["root"] / "tokenizer.json", CONFIG, tmp_path / "out")


def test_encoding_in_byte_bounded_chunks_keeps_every_row_in_order(
    tmp_path: Path, save_tokenizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The executor encodes a batch a few bytes at a time (`_encoded`): every kept row, once,
    in order, with the same ids as one call over all of them; invalid UTF-8 counted once."""
    from tasks.tokenize import shard_writer

    texts = ["the cat sat", "on the mat", "a much longer line of words " * 5, "x", "dogs"]
    tokenizer = load_tokenizer(save_tokenizer(tmp_path / "tok.json", texts))
    raw = [t.encode() for t in texts] + [b"bad \xff byte"]
    keep = [0, 2, 3, 4, 5]
    whole = tokenizer.encode_batch_fast([raw[i].decode("utf-8", "replace") for i in keep])
    monkeypatch.setattr(shard_writer, "ENCODE_BYTES", 12)  # smaller than several rows
    counts = dict.fromkeys(shard_writer.COUNTERS, 0)
    got = list(shard_writer._encoded(tokenizer, keep, raw, counts))
    assert [row for row, _ in got] == keep
    assert [e.ids for _, e in got] == [e.ids for e in whole]
    assert counts["invalid_utf8_docs"] == 1
    assert list(shard_writer._encoded(tokenizer, [], raw, counts)) == []
