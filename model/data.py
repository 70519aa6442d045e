"""The training data loader: verified, memory-mapped token shards and batches of (x, y) windows.

`TokenDataset` reads a tokenize output folder (`manifest.json` + shards, format in
`model/token_format.py`), refuses any shard whose header, size or sha256 disagrees with the
manifest, and maps the tokens without reading them. Windows of `block_size + 1` tokens never
straddle two shards. `random_batches` gives each rank a disjoint contiguous slice of every shard,
so no token is seen by two ranks, and keeps its generator in an object with
`state_dict()` / `load_state_dict()` so a resumed run draws exactly the batches it would have.
`sequential_batches` deals the evaluation windows out to ranks in turn, without overlap.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from itertools import islice, pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.files import sha256_file
from model.token_format import (
    FORMAT_VERSION,
    HEADER_BYTES,
    REBUILD_HINT,
    ShardFormatError,
    ShardHeader,
    index_path,
    map_tokens,
    read_document_offsets,
    read_header,
)

Batch = tuple[torch.Tensor, torch.Tensor]


def _windows(tokens: list[np.ndarray], picks: list[tuple[int, int]], block_size: int) -> Batch:
    """Stack (shard, start) windows of block_size + 1 tokens into int64 (B, T) inputs, targets."""
    rows = np.stack([tokens[s][o : o + block_size + 1] for s, o in picks]).astype(np.int64)
    return torch.from_numpy(rows[:, :-1].copy()), torch.from_numpy(rows[:, 1:].copy())


class TokenDataset:
    """One split ('train' or 'val') of a tokenize output folder, checked against its manifest."""

    def __init__(self, shard_dir: Path | str, split: str, verify_checksums: bool = True):
        self.shard_dir, self.split = Path(shard_dir), split
        manifest_path = self.shard_dir / "manifest.json"
        if not manifest_path.is_file():
            raise ShardFormatError(
                f"{manifest_path} not found: {self.shard_dir} is not a finished tokenize output; "
                f"{REBUILD_HINT}"
            )
        raw = manifest_path.read_bytes()
        self.manifest: dict[str, Any] = json.loads(raw)
        self.manifest_sha256 = hashlib.sha256(raw).hexdigest()
        if self.manifest.get("format_version") != FORMAT_VERSION:
            raise ShardFormatError(
                f"{manifest_path}: format version {self.manifest.get('format_version')!r}, this "
                f"code reads {FORMAT_VERSION}: {REBUILD_HINT}"
            )
        if split not in self.manifest["totals"]:
            raise ValueError(
                f"no split {split!r} in {manifest_path}: {sorted(self.manifest['totals'])}"
            )
        self.entries = [e for e in self.manifest["shards"] if e["split"] == split]
        self.paths = [self.shard_dir / e["file"] for e in self.entries]
        self.tokens = [
            self._open(p, e, verify_checksums)
            for p, e in zip(self.paths, self.entries, strict=True)
        ]

    @property
    def vocab_size(self) -> int:
        return int(self.manifest["vocab_size"])

    @property
    def eot_id(self) -> int:
        return int(self.manifest["eot_id"])

    @property
    def num_tokens(self) -> int:
        return sum(len(t) for t in self.tokens)

    def _open(self, path: Path, entry: dict[str, Any], verify: bool) -> np.memmap:
        """Check one shard against its manifest entry and memory-map its tokens."""
        if not path.is_file() or not index_path(path).is_file():
            raise ShardFormatError(f"{path} (or its .idx) is missing: {REBUILD_HINT}")
        header = read_header(path)
        expected = ShardHeader(
            int(self.manifest["token_bytes"]),
            self.vocab_size,
            int(entry["tokens"]),
            int(entry["docs"]),
            self.eot_id,
        )
        if header != expected:
            raise ShardFormatError(
                f"{path}: header {header} does not match manifest.json {expected}: {REBUILD_HINT}"
            )
        size, want = path.stat().st_size, HEADER_BYTES + header.num_tokens * header.token_bytes
        if size != want:
            raise ShardFormatError(
                f"{path}: {size} bytes, the header and manifest say {want}; the file is "
                f"truncated or extended: {REBUILD_HINT}"
            )
        if verify:
            for file, key in ((path, "sha256"), (index_path(path), "index_sha256")):
                if sha256_file(file) != entry[key]:
                    raise ShardFormatError(
                        f"{file}: sha256 differs from manifest.json, the file is damaged or was "
                        f"changed after tokenizing: {REBUILD_HINT}"
                    )
        return map_tokens(path, header)

    def documents(self) -> Iterator[np.ndarray]:
        """Each document's tokens (end-of-text id removed), shard by shard in manifest order."""
        for path, tokens in zip(self.paths, self.tokens, strict=True):
            bounds = [*read_document_offsets(path, read_header(path)).tolist(), len(tokens)]
            for start, end in pairwise(bounds):
                yield np.asarray(tokens[start : end - 1])

    def too_small(self, block_size: int, world_size: int = 1) -> ShardFormatError:
        """The error for a corpus that holds no window of block_size + 1 tokens (per rank)."""
        largest = max((len(t) for t in self.tokens), default=0)
        per_rank = f", {largest // world_size} per rank with {world_size} ranks"
        fix = "lower model.block_size or tokenize more text"
        if not self.tokens:
            fix += " (no document hashed into this split: raise tokenize.val_fraction)"
        return ShardFormatError(
            f"split {self.split!r} of {self.shard_dir} has {self.num_tokens} tokens in "
            f"{len(self.tokens)} shard(s) (largest shard {largest}"
            f"{per_rank if world_size > 1 else ''}); block_size {block_size} needs "
            f"{block_size + 1} consecutive tokens inside one shard: {fix}"
        )

    def random_batches(
        self, batch_size: int, block_size: int, seed: int, rank: int = 0, world_size: int = 1
    ) -> RandomBatches:
        """Endless random (x, y) batches from this rank's disjoint share of the split."""
        return RandomBatches(self, batch_size, block_size, seed, rank, world_size)

    def sequential_batches(
        self,
        batch_size: int,
        block_size: int,
        max_batches: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> Iterator[Batch]:
        """Non-overlapping windows in shard order, for evaluation; the last batch may be short.

        With `world_size` > 1, rank r takes windows r, r + W, r + 2W, ... of that order: the ranks
        share no window, together cover all, and hold counts that differ by at most one."""
        if not 0 <= rank < world_size:
            raise ValueError(
                f"rank {rank} is outside 0..{world_size - 1} (world_size {world_size})"
            )
        windows = sum(max(0, -(-(len(t) - block_size) // block_size)) for t in self.tokens)
        if windows == 0:
            raise self.too_small(block_size)
        if windows < world_size:
            raise ValueError(
                f"split {self.split!r} of {self.shard_dir} holds {windows} window(s) of "
                f"{block_size + 1} tokens, fewer than the {world_size} ranks sharing them: "
                "lower model.block_size, use fewer ranks or tokenize more text"
            )
        return self._sequential(batch_size, block_size, max_batches, rank, world_size)

    def _sequential(
        self, batch_size: int, block_size: int, max_batches: int | None, rank: int, world_size: int
    ) -> Iterator[Batch]:
        starts = (
            (shard, start)
            for shard, tokens in enumerate(self.tokens)
            for start in range(0, len(tokens) - block_size, block_size)
        )
        mine = islice(starts, rank, None, world_size)
        batches = iter(lambda: list(islice(mine, batch_size)), [])
        for picks in islice(batches, max_batches):
            yield _windows(self.tokens, picks, block_size)


class RandomBatches:
    """Iterator of uniformly sampled windows whose generator state can be saved and restored."""

    def __init__(
        self,
        dataset: TokenDataset,
        batch_size: int,
        block_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ):
        if not 0 <= rank < world_size:
            raise ValueError(
                f"rank {rank} is outside 0..{world_size - 1} (world_size {world_size})"
            )
        self.dataset, self.batch_size, self.block_size = dataset, batch_size, block_size
        self.seed, self.rank, self.world_size = seed, rank, world_size
        # rank r owns [len*r/W, len*(r+1)/W) of every shard; a window must fit inside that slice
        self.regions: list[tuple[int, int, int]] = []  # (shard, first start, number of starts)
        for shard, tokens in enumerate(dataset.tokens):
            lo = len(tokens) * rank // world_size
            hi = len(tokens) * (rank + 1) // world_size
            if hi - lo > block_size:
                self.regions.append((shard, lo, hi - lo - block_size))
        if not self.regions:
            raise dataset.too_small(block_size, world_size)
        self.cumulative = np.cumsum([n for _, _, n in self.regions])
        self.rng = np.random.default_rng([seed, rank])
        self.batches_drawn = 0

    def __iter__(self) -> RandomBatches:
        return self

    def __next__(self) -> Batch:
        draws = self.rng.integers(0, self.cumulative[-1], size=self.batch_size)
        region = np.searchsorted(self.cumulative, draws, side="right")
        picks = []
        for draw, r in zip(draws.tolist(), region.tolist(), strict=True):
            shard, lo, count = self.regions[r]
            picks.append((shard, lo + draw - int(self.cumulative[r]) + count))
        self.batches_drawn += 1
        return _windows(self.dataset.tokens, picks, self.block_size)

    def _identity(self) -> dict[str, Any]:
        return {
            "data": self.dataset.manifest_sha256,
            "split": self.dataset.split,
            "batch_size": self.batch_size,
            "block_size": self.block_size,
            "seed": self.seed,
            "rank": self.rank,
            "world_size": self.world_size,
        }

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the exact same sequence of batches (plain Python types)."""
        return {
            **self._identity(),
            "rng": self.rng.bit_generator.state,
            "batches": self.batches_drawn,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state`; refuses a state saved for other data, sizes, seed or rank."""
        for key, value in self._identity().items():
            if state.get(key) != value:
                raise ValueError(
                    f"loader state was saved with {key}={state.get(key)!r}, this loader has "
                    f"{key}={value!r}: resume with the same data, batch/block size, seed and ranks"
                )
        self.rng.bit_generator.state = state["rng"]
        self.batches_drawn = int(state["batches"])
