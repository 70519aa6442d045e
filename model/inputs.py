"""What a training run reads: pretraining token shards or fine-tuning examples, behind one shape.

Either way a run gets an endless, resumable, rank-sharded batch stream (`state_dict()` /
`load_state_dict()`), a factory of validation batches, and the tokenizer file its export copies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from model.config import TrainConfig
from model.data import Batch, RandomBatches, TokenDataset
from model.gpt import ModelConfig
from model.sft import SftBatches, SftDataset


@dataclass
class TrainData:
    """What a run reads: its batch stream, its validation batches, the tokenizer it exports."""

    batches: RandomBatches | SftBatches
    val_batches: Callable[[], Iterator[Batch]]
    tokenizer: Path
    vocab_size: int


def open_data(
    data_dir: Path | None,
    sft: dict[str, str] | None,
    cfg: ModelConfig,
    tc: TrainConfig,
    rank: int,
    world: int,
) -> TrainData:
    """Token shards from data_dir, or the fine-tuning JSONL files of `sft` when given."""
    if sft:
        tokenizer = Path(sft["tokenizer"])
        train = SftDataset(sft["train"], tokenizer, cfg.block_size)
        val = SftDataset(sft["val"], tokenizer, cfg.block_size)
        batches: RandomBatches | SftBatches = train.random_batches(
            tc.micro_batch, tc.seed, rank, world
        )
        return TrainData(
            batches,
            lambda: val.sequential_batches(tc.micro_batch, tc.eval_batches),
            tokenizer,
            train.vocab_size,
        )
    if data_dir is None:
        raise ValueError("the job needs data_dir (a tokenize output) or sft (JSONL files)")
    tokenizer = data_dir / "tokenizer.json"
    if not tokenizer.is_file():  # checked first: the export at the end copies it
        raise FileNotFoundError(f"{tokenizer} is missing: point data_dir at a tokenize output")
    train_set, val_set = TokenDataset(data_dir, "train"), TokenDataset(data_dir, "val")
    batches = train_set.random_batches(tc.micro_batch, cfg.block_size, tc.seed, rank, world)
    return TrainData(
        batches,
        lambda: val_set.sequential_batches(tc.micro_batch, cfg.block_size, tc.eval_batches),
        tokenizer,
        train_set.vocab_size,
    )
