"""A tiny tokenize output (tokenizer.json + train/val shards + manifest.json) for model tests."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from model.files import sha256_file
from model.token_format import FORMAT_VERSION, INDEX_DTYPE, ShardHeader, index_path
from model.tokenizer import EOT, SPECIAL_TOKENS

SUBJECTS = ["The parser", "This function", "A module", "The class", "Each method"]
VERBS = ["returns", "reads", "writes", "checks", "builds"]
OBJECTS = ["a list of tokens.", "the config file.", "one shard.", "the model.", "a string."]


def sentences() -> list[str]:
    """Short, very regular documents: easy to overfit, so the loss falls within a few steps."""
    return [" ".join(t) for t in itertools.product(SUBJECTS, VERBS, OBJECTS)]


def write_shard(folder: Path, name: str, documents: list[list[int]], vocab: int, eot: int) -> dict:
    """One shard + .idx in the model/token_format layout; returns its manifest entry."""
    tokens = np.array([t for doc in documents for t in [*doc, eot]], dtype="<u2")
    offsets = np.cumsum([0] + [len(doc) + 1 for doc in documents[:-1]]).astype(INDEX_DTYPE)
    path = folder / name
    path.write_bytes(ShardHeader(2, vocab, len(tokens), len(documents), eot).to_bytes())
    with path.open("ab") as handle:
        handle.write(tokens.tobytes())
    offsets.tofile(index_path(path))
    split = name.split("-")[0]
    return {
        "file": name,
        "index": index_path(path).name,
        "split": split,
        "tokens": len(tokens),
        "docs": len(documents),
        "sha256": sha256_file(path),
        "index_sha256": hashlib.sha256(offsets.tobytes()).hexdigest(),
    }


def build_tiny_corpus(folder: Path, repeats: int = 20) -> Path:
    """Train a small byte-level BPE on the sentences and write train and val shards."""
    folder.mkdir(parents=True, exist_ok=True)
    texts = sentences()
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.save(str(folder / "tokenizer.json"))
    vocab, eot = tokenizer.get_vocab_size(), tokenizer.token_to_id(EOT)
    encoded = [tokenizer.encode(text).ids for text in texts]
    rng = np.random.default_rng(0)
    train_docs = [encoded[i] for i in rng.integers(0, len(encoded), size=len(encoded) * repeats)]
    entries = [
        write_shard(folder, "train-p00000-00000.bin", train_docs, vocab, eot),
        write_shard(folder, "val-p00000-00000.bin", encoded, vocab, eot),
    ]
    totals = {e["split"]: {"shards": 1, "docs": e["docs"], "tokens": e["tokens"]} for e in entries}
    manifest = {
        "format_version": FORMAT_VERSION,
        "token_bytes": 2,
        "dtype": "uint16",
        "vocab_size": vocab,
        "eot_id": eot,
        "tokenizer": "tokenizer.json",
        "shards": entries,
        "totals": totals,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tokenize output folder with ~30k train tokens and a 320-token vocabulary."""
    return build_tiny_corpus(tmp_path_factory.mktemp("tokens"))
