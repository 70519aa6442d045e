"""Run under the `deepspeed` launcher by test_zero_stages.py: the same tiny training, once per
ZeRO stage, in one launch (each launch costs seconds of imports). Rank 0 writes the losses."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from model.config import TrainConfig
from model.data import TokenDataset
from model.engine import build_engine, init_distributed
from model.gpt import GPT, ModelConfig
from model.train import mean_over_ranks, optimizer_step

TINY = ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=32, vocab_size=320)


def stage_losses(data: TokenDataset, stage: int, steps: int) -> list[float]:
    """Mean loss over ranks at each optimizer step of a fresh, identically seeded run."""
    rank, world = dist.get_rank(), dist.get_world_size()
    train = TrainConfig(
        steps=steps, micro_batch=4, grad_accum=2, zero_stage=stage, lr=3e-3, warmup_steps=2
    )
    torch.manual_seed(0)
    engine = build_engine(GPT(TINY), train, world)
    batches = data.random_batches(train.micro_batch, TINY.block_size, 0, rank, world)
    return [mean_over_ranks(optimizer_step(engine, batches, 2)) for _ in range(steps)]


def main() -> None:
    data_dir, out, steps = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    init_distributed()
    torch.set_num_threads(1)
    data = TokenDataset(data_dir, "train")
    losses = {stage: stage_losses(data, stage, steps) for stage in (0, 1, 2, 3)}
    if dist.get_rank() == 0:
        out.write_text(json.dumps(losses))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
