"""Run under the `deepspeed` launcher by test_muon.py, with 1 or 2 ranks: a tiny training with
Muon (ZeRO 2, fp32) on the same global batches whatever the rank count, so one rank's losses
must equal two ranks'. Rank 0 writes the losses."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.distributed as dist

from model.config import TrainConfig
from model.data import Batch, TokenDataset
from model.engine import build_engine, init_distributed
from model.gpt import GPT, ModelConfig
from model.train import mean_over_ranks, optimizer_step

TINY = ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=32, vocab_size=320)
MICRO, GLOBAL = 4, 16  # sequences per micro-batch, per optimizer step (all ranks)


def my_micro_batches(data: TokenDataset, rank: int, world: int) -> Iterator[Batch]:
    """This rank's micro-batches of one global stream: each step's GLOBAL sequences, split into
    the GLOBAL / MICRO micro-batches that accumulation step a of rank r takes (a * W + r)."""
    for x, y in data.random_batches(GLOBAL, TINY.block_size, 0):  # the same stream on all ranks
        for start in range(rank * MICRO, GLOBAL, world * MICRO):
            yield x[start : start + MICRO], y[start : start + MICRO]


def main() -> None:
    data_dir, out, steps = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    init_distributed()
    torch.set_num_threads(1)
    rank, world = dist.get_rank(), dist.get_world_size()
    accum = GLOBAL // (MICRO * world)
    train = TrainConfig(
        steps=steps, micro_batch=MICRO, grad_accum=accum, zero_stage=2, precision="fp32",
        lr=3e-3, warmup_steps=2, optimizer="muon", muon_lr=0.02, grad_clip=0.0,
    )  # fmt: skip
    torch.manual_seed(0)
    engine = build_engine(GPT(TINY), train, world)
    batches = my_micro_batches(TokenDataset(data_dir, "train"), rank, world)
    losses = [mean_over_ranks(optimizer_step(engine, batches, accum)) for _ in range(steps)]
    if rank == 0:
        out.write_text(json.dumps(losses))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
