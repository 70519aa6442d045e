"""The token loader: verification of shards, seeded disjoint random batches, resumable state."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from model.data import TokenDataset
from model.token_format import (
    HEADER_BYTES,
    INDEX_DTYPE,
    ShardFormatError,
    ShardHeader,
    index_path,
    read_documents,
)

VOCAB, EOT = 8192, 0


def write_split(folder: Path, split: str, shards: list[list[list[int]]]) -> None:
    """Write shards (lists of documents, each a token list without eot) and a manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text()) if path.exists() else {"shards": [], "totals": {}}
    for number, documents in enumerate(shards):
        tokens = np.array([t for doc in documents for t in [*doc, EOT]], dtype="<u2")
        offsets = np.cumsum([0] + [len(doc) + 1 for doc in documents[:-1]]).astype(INDEX_DTYPE)
        name = f"{split}-p00000-{number:05d}.bin"
        header = ShardHeader(2, VOCAB, len(tokens), len(documents), EOT)
        (folder / name).write_bytes(header.to_bytes() + tokens.tobytes())
        offsets.tofile(index_path(folder / name))
        manifest["shards"].append(
            {
                "file": name,
                "index": index_path(folder / name).name,
                "split": split,
                "tokens": len(tokens),
                "docs": len(documents),
                "sha256": hashlib.sha256((folder / name).read_bytes()).hexdigest(),
                "index_sha256": hashlib.sha256(offsets.tobytes()).hexdigest(),
            }
        )
    manifest["totals"][split] = {"tokens": sum(e["tokens"] for e in manifest["shards"])}
    manifest.update(format_version=1, token_bytes=2, dtype="uint16", vocab_size=VOCAB, eot_id=EOT)
    path.write_text(json.dumps(manifest))


@pytest.fixture
def shard_dir(tmp_path: Path) -> Path:
    """Two train shards whose token values are all distinct (value = position + 1), eot = 0."""
    first = [list(range(1 + 100 * d, 100 * d + 100)) for d in range(10)]  # 10 docs, 1000 tokens
    second = [list(range(2001 + 50 * d, 2050 + 50 * d)) for d in range(6)]  # 6 docs, 300 tokens
    write_split(tmp_path, "train", [first, second])
    write_split(tmp_path, "val", [[list(range(5001, 5040))]])
    return tmp_path


def test_properties_and_documents(shard_dir: Path) -> None:
    data = TokenDataset(shard_dir, "train")
    assert (data.vocab_size, data.eot_id, data.num_tokens) == (VOCAB, EOT, 1300)
    documents = list(data.documents())
    assert len(documents) == 16
    assert documents[0].tolist() == list(range(1, 100))
    assert read_documents(shard_dir / "train-p00000-00001.bin")[-1] == list(range(2251, 2300))


def test_random_batches_are_seeded_and_shifted(shard_dir: Path) -> None:
    data = TokenDataset(shard_dir, "train")
    x, y = next(data.random_batches(batch_size=8, block_size=16, seed=7))
    assert x.shape == y.shape == (8, 16) and x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    again = data.random_batches(batch_size=8, block_size=16, seed=7)
    other = data.random_batches(batch_size=8, block_size=16, seed=8)
    assert torch.equal(next(again)[0], x)
    assert not torch.equal(next(other)[0], x)


def test_ranks_draw_from_disjoint_tokens(shard_dir: Path) -> None:
    data = TokenDataset(shard_dir, "train")
    seen = []
    for rank in range(2):
        batches = data.random_batches(batch_size=16, block_size=32, seed=1, rank=rank, world_size=2)
        values: set[int] = set()
        for _, (x, y) in zip(range(20), batches, strict=False):
            values |= set(x.flatten().tolist()) | set(y.flatten().tolist())
        seen.append(values - {EOT})
    assert seen[0] and seen[1] and not seen[0] & seen[1]


@pytest.mark.parametrize(("rank", "world_size"), [(0, 1), (1, 2)])
def test_random_batches_resume_exactly(shard_dir: Path, rank: int, world_size: int) -> None:
    data = TokenDataset(shard_dir, "train")
    ranks = {"rank": rank, "world_size": world_size}
    batches = data.random_batches(batch_size=4, block_size=16, seed=3, **ranks)
    for _ in range(3):
        next(batches)
    state = json.loads(json.dumps(batches.state_dict()))  # survives a JSON round trip
    expected = [next(batches) for _ in range(4)]
    fresh = TokenDataset(shard_dir, "train")
    resumed = fresh.random_batches(batch_size=4, block_size=16, seed=3, **ranks)
    resumed.load_state_dict(state)
    for want_x, want_y in expected:
        x, y = next(resumed)
        assert torch.equal(x, want_x) and torch.equal(y, want_y)
    assert resumed.batches_drawn == 7
    wrong = data.random_batches(batch_size=4, block_size=32, seed=3, **ranks)
    with pytest.raises(ValueError, match="block_size=16"):
        wrong.load_state_dict(state)


def test_sequential_batches_cover_non_overlapping_windows(shard_dir: Path) -> None:
    data = TokenDataset(shard_dir, "train")
    batches = list(data.sequential_batches(batch_size=4, block_size=100))
    # windows of 101 tokens stepping by 100: 9 in the 1000-token shard, 2 in the 300-token one
    assert [len(x) for x, _ in batches] == [4, 4, 3]
    starts = [int(x[i, 0]) for x, _ in batches for i in range(len(x))]
    assert len(set(starts)) == 11
    assert len(list(data.sequential_batches(batch_size=4, block_size=100, max_batches=2))) == 2


def test_tiny_corpus_is_a_clear_error(shard_dir: Path) -> None:
    data = TokenDataset(shard_dir, "val")  # one shard of 40 tokens
    with pytest.raises(ShardFormatError, match="has 40 tokens .* block_size 64 needs 65"):
        data.random_batches(batch_size=2, block_size=64, seed=0)
    with pytest.raises(ShardFormatError, match="block_size 40 needs 41"):
        data.sequential_batches(batch_size=2, block_size=40)
    with pytest.raises(ShardFormatError, match="per rank with 2 ranks"):
        data.random_batches(batch_size=2, block_size=30, seed=0, rank=1, world_size=2)


def test_an_empty_split_says_why(tmp_path: Path) -> None:
    write_split(tmp_path, "train", [[list(range(1, 100))]])
    write_split(tmp_path, "val", [])
    data = TokenDataset(tmp_path, "val")
    assert data.num_tokens == 0
    with pytest.raises(ShardFormatError, match="has 0 tokens in 0 shard.*raise tokenize.val_frac"):
        data.sequential_batches(batch_size=2, block_size=8)


def test_a_flipped_byte_is_refused(shard_dir: Path) -> None:
    shard = shard_dir / "train-p00000-00001.bin"
    raw = bytearray(shard.read_bytes())
    raw[HEADER_BYTES + 10] ^= 0xFF
    shard.write_bytes(bytes(raw))
    with pytest.raises(ShardFormatError, match=r"train-p00000-00001\.bin: sha256 .*re-run the"):
        TokenDataset(shard_dir, "train")
    TokenDataset(shard_dir, "val")  # the other split is still fine


def test_a_wrong_header_is_refused(shard_dir: Path) -> None:
    shard = shard_dir / "train-p00000-00000.bin"
    raw = shard.read_bytes()
    wrong_vocab = ShardHeader(2, 50257, 1000, 10, EOT).to_bytes()
    shard.write_bytes(wrong_vocab + raw[HEADER_BYTES:])
    with pytest.raises(ShardFormatError, match=r"00000\.bin: header .*tokenize step"):
        TokenDataset(shard_dir, "train", verify_checksums=False)
    shard.write_bytes(b"\x00" * 4 + raw[4:])
    with pytest.raises(ShardFormatError, match=r"00000\.bin: bad magic number"):
        TokenDataset(shard_dir, "train")
    shard.write_bytes(raw[:-2])
    with pytest.raises(ShardFormatError, match=r"00000\.bin: \d+ bytes, .*truncated"):
        TokenDataset(shard_dir, "train")


def test_missing_manifest_and_index_are_refused(shard_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ShardFormatError, match="manifest.json not found"):
        TokenDataset(tmp_path / "nowhere", "train")
    index_path(shard_dir / "val-p00000-00000.bin").unlink()
    with pytest.raises(
        ShardFormatError, match=r"val-p00000-00000\.bin \(or its \.idx\) is missing"
    ):
        TokenDataset(shard_dir, "val")


@pytest.mark.parametrize("world_size", [2, 3])
def test_sequential_batches_are_dealt_to_ranks_without_overlap(
    shard_dir: Path, world_size: int
) -> None:
    data = TokenDataset(shard_dir, "train")

    def starts(rank: int, world: int) -> list[int]:
        batches = data.sequential_batches(3, 100, rank=rank, world_size=world)
        return [int(v) for x, _ in batches for v in x[:, 0]]

    everything = starts(0, 1)
    shares = [starts(rank, world_size) for rank in range(world_size)]
    assert sorted(s for share in shares for s in share) == sorted(everything)  # no overlap, all
    assert max(map(len, shares)) - min(map(len, shares)) <= 1
    assert shares[1] == everything[1::world_size]


def test_sequential_batches_refuse_bad_ranks(shard_dir: Path) -> None:
    data = TokenDataset(shard_dir, "train")
    with pytest.raises(ValueError, match="rank 2 is outside 0..1"):
        data.sequential_batches(2, 100, rank=2, world_size=2)
    # 11 windows of 101 tokens cannot give each of 12 ranks one
    with pytest.raises(ValueError, match="holds 11 window.* fewer than the 12 ranks"):
        data.sequential_batches(2, 100, rank=0, world_size=12)
