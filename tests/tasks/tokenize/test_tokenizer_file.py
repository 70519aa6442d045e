"""A given tokenizer.json instead of training: checks, a byte-exact copy with its hash, and exact
round trips through shards on the real books and the extraction benchmark's gold texts."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

from model.data import TokenDataset
from model.files import sha256_file
from model.tokenizer import EOT, load_tokenizer
from tasks.config import TokenizeConfig
from tasks.tokenize.bpe import use_tokenizer_file
from tasks.tokenize.shards import write_shards

TEXTS = ["The given tokenizer is used as it is.", "naïve café — 日本語 🎉\r\n"] * 5


def test_a_given_tokenizer_is_copied_with_its_hash(tmp_path: Path, save_tokenizer) -> None:
    given = save_tokenizer(tmp_path / "mine.json", TEXTS)
    info = use_tokenizer_file(given, tmp_path / "out" / "tokenizer.json")
    assert (tmp_path / "out" / "tokenizer.json").read_bytes() == given.read_bytes()
    assert info["tokenizer_sha256"] == sha256_file(given)
    assert info["source"] == str(given.resolve()) and info["train_docs"] == 0
    assert info["eot_id"] == load_tokenizer(given).token_to_id(EOT)


def test_unusable_tokenizer_files_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    with pytest.raises(ValueError, match="does not exist: set tokenize.tokenizer_file"):
        use_tokenizer_file(tmp_path / "nowhere.json", out)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a readable tokenizer.json"):
        use_tokenizer_file(tmp_path / "broken.json", out)
    plain = Tokenizer(models.BPE())
    plain.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    plain.train_from_iterator(TEXTS, trainers.BpeTrainer(vocab_size=300, show_progress=False))
    plain.save(str(tmp_path / "no_eot.json"))
    with pytest.raises(ValueError, match=r"has no <\|endoftext\|> token"):
        use_tokenizer_file(tmp_path / "no_eot.json", out)
    plain.add_special_tokens([EOT])
    plain.normalizer = normalizers.Lowercase()
    plain.save(str(tmp_path / "lossy.json"))
    with pytest.raises(ValueError, match="does not decode its own tokens back"):
        use_tokenizer_file(tmp_path / "lossy.json", out)
    assert not out.exists()


def test_real_texts_round_trip_through_shards(
    spark, shared_corpus: Path, tmp_path: Path, save_tokenizer
) -> None:
    books = [p.read_text(encoding="utf-8") for p in sorted((shared_corpus / "books").glob("*.txt"))]
    gold = json.loads((shared_corpus / "extraction" / "ground-truth.json").read_text("utf-8"))
    texts = books + [item["articleBody"] for _, item in sorted(gold.items())]
    ids = [f"doc-{i:04d}" for i in range(len(texts))]
    (tmp_path / "docs").mkdir()
    pq.write_table(pa.table({"id": ids, "text": texts}), tmp_path / "docs" / "part-0.parquet")
    given = save_tokenizer(tmp_path / "given.json", texts, vocab_size=2048)
    use_tokenizer_file(given, tmp_path / "out" / "tokenizer.json")
    config = TokenizeConfig(val_fraction=0.2, shard_tokens=200_000, partitions=2)
    saved = tmp_path / "out" / "tokenizer.json"
    stats = write_shards(spark, str(tmp_path / "docs"), saved, config, tmp_path / "out")
    assert stats["docs"] == len(texts) and stats["skipped_empty"] == 0
    tokenizer = load_tokenizer(given)
    decoded = [
        tokenizer.decode(doc.tolist())
        for split in ("train", "val")
        for doc in TokenDataset(tmp_path / "out", split).documents()
    ]
    assert sorted(decoded) == sorted(texts)  # BOM, CRLF and every gold body, byte for byte
