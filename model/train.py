"""The training script each rank runs under the `deepspeed` launcher.

    DS_ACCELERATOR=cpu deepspeed --num_gpus 2 --no_local_rank --module model.train --job job.json

The job JSON (written by `model.launch.launch_training`) holds `model` (ModelConfig), `train`
(TrainConfig), `data_dir` (a tokenize output folder), `out_dir` and `tracking` (`uri`, `run_id`).
Every rank trains on its own disjoint stream of random windows; rank 0 alone logs, prints and
exports. Output in out_dir: metrics.jsonl, checkpoints/ (DeepSpeed, all ranks),
model/ (model.safetensors, config.json, tokenizer.json) and train_summary.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from model.checkpoint import export_model
from model.config import TrainConfig
from model.data import Batch, TokenDataset
from model.engine import build_engine, full_fp32_state_dict, init_distributed
from model.gpt import GPT, ModelConfig
from model.tracking import Tracker, make_tracker


@dataclass
class Job:
    """One training job, as read from job.json."""

    model: ModelConfig
    train: TrainConfig
    data_dir: Path
    out_dir: Path
    tracking_uri: str
    run_id: str


def load_job(path: Path) -> Job:
    """Read and type-check job.json; a missing or unknown key fails with its name."""
    raw = json.loads(Path(path).read_text())
    missing = {"model", "train", "data_dir", "out_dir"} - set(raw)
    if missing:
        raise ValueError(f"{path}: missing key(s) {sorted(missing)}")
    try:
        model, train = ModelConfig(**raw["model"]), TrainConfig(**raw["train"])
    except TypeError as err:
        raise ValueError(f"{path}: {err}") from err
    tracking = raw.get("tracking") or {}
    return Job(
        model,
        train,
        Path(raw["data_dir"]),
        Path(raw["out_dir"]),
        tracking.get("uri", ""),
        tracking.get("run_id", ""),
    )


def torch_threads(train: TrainConfig) -> int:
    """`train.torch_threads`, or this machine's cores shared evenly by the ranks on it."""
    if train.torch_threads > 0:
        return train.torch_threads
    local_ranks = int(os.environ.get("LOCAL_SIZE", os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, len(os.sched_getaffinity(0)) // local_ranks)


def mean_over_ranks(value: float) -> float:
    """The mean of a float over all ranks (every rank must call)."""
    tensor = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(tensor)
    return tensor.item() / dist.get_world_size()


@torch.no_grad()
def validation_loss(engine: Any, val: TokenDataset, job: Job) -> float:
    """Token-weighted mean loss over the first `eval_batches` validation batches.

    Every rank evaluates the same batches: under ZeRO-3 a forward pass needs all ranks."""
    engine.eval()
    total, count = 0.0, 0
    batches = val.sequential_batches(
        job.train.micro_batch, job.model.block_size, job.train.eval_batches
    )
    for x, y in batches:
        _, loss = engine(x.to(engine.device), y.to(engine.device))
        total += loss.item() * y.numel()
        count += y.numel()
    engine.train()
    return total / count


def optimizer_step(engine: Any, batches: Iterator[Batch], grad_accum: int) -> torch.Tensor:
    """One optimizer step over `grad_accum` micro-batches; this rank's mean loss (no sync)."""
    loss_sum = torch.zeros(())
    for _ in range(grad_accum):
        x, y = next(batches)
        _, loss = engine(x.to(engine.device), y.to(engine.device))
        engine.backward(loss)
        engine.step()  # DeepSpeed steps the optimizer only at the accumulation boundary
        loss_sum += loss.detach().float().cpu()
    return loss_sum / grad_accum


def train(job: Job) -> dict[str, Any] | None:
    """Run the job on this rank; rank 0 returns the summary, the others None."""
    started = time.time()
    init_distributed()
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(torch_threads(job.train))
    torch.manual_seed(job.train.seed)  # the same initial weights on every rank
    cfg, tc = job.model, job.train
    tokenizer = job.data_dir / "tokenizer.json"
    if not tokenizer.is_file():  # checked first: the export at the end copies it
        raise FileNotFoundError(f"{tokenizer} is missing: point data_dir at a tokenize output")
    train_data, val_data = TokenDataset(job.data_dir, "train"), TokenDataset(job.data_dir, "val")
    if cfg.vocab_size < train_data.vocab_size:
        raise ValueError(
            f"model.vocab_size={cfg.vocab_size} < the data's vocabulary {train_data.vocab_size}"
        )
    model = GPT(cfg)
    num_params = model.num_params()
    engine = build_engine(model, tc, world)
    batches = train_data.random_batches(tc.micro_batch, cfg.block_size, tc.seed, rank, world)
    tracker = make_tracker(job.tracking_uri, job.run_id, job.out_dir / "metrics.jsonl")
    tracker = tracker if rank == 0 else Tracker()
    tokens_per_step = tc.micro_batch * tc.grad_accum * world * cfg.block_size
    train_s, logged_s, logged_step = 0.0, 0.0, 0
    first_loss = train_loss = val_loss = math.nan
    for step in range(1, tc.steps + 1):
        step_start, lr = time.time(), engine.get_lr()[0]  # the rate this step applies
        loss = optimizer_step(engine, batches, tc.grad_accum)
        train_s += time.time() - step_start
        metrics: dict[str, float] = {}
        if step == 1 or step % tc.log_every == 0 or step == tc.steps:
            train_loss = mean_over_ranks(loss.item())
            first_loss = train_loss if step == 1 else first_loss
            speed = (step - logged_step) * tokens_per_step / max(train_s - logged_s, 1e-9)
            metrics |= {"train_loss": train_loss, "lr": lr, "tokens_per_s": speed}
            logged_s, logged_step = train_s, step
        if step % tc.eval_every == 0 or step == tc.steps:
            val_loss = metrics["val_loss"] = validation_loss(engine, val_data, job)
        if metrics and rank == 0:
            tracker.log_metrics(metrics, step)
            shown = " | ".join(f"{k} {v:.4g}" for k, v in metrics.items())
            print(f"step {step}/{tc.steps} | {shown}", flush=True)
    tracker.close()
    engine.save_checkpoint(str(job.out_dir / "checkpoints"))
    weights = full_fp32_state_dict(engine)  # a collective: every rank takes part
    if rank != 0:
        return None
    exported = GPT(cfg)
    for name, param in exported.named_parameters():  # the tied head follows the embedding
        param.data.copy_(weights[name])
    export_model(exported, cfg, job.out_dir / "model", tokenizer)
    summary = {
        "steps": tc.steps,
        "first_loss": first_loss,
        "final_loss": train_loss,
        "val_loss": val_loss,
        "tokens_per_s": tc.steps * tokens_per_step / train_s,
        "num_params": num_params,
        "world_size": world,
        "wall_s": round(time.time() - started, 2),
    }
    (job.out_dir / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"done: {json.dumps(summary)}", flush=True)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--job", required=True, type=Path, help="the job JSON file")
    # The launcher passes --local_rank unless told --no_local_rank; LOCAL_RANK is in the env.
    parser.add_argument("--local_rank", type=int, default=-1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    # Keep the ranks' output to our own lines: DeepSpeed's info logs and a deprecation warning
    # that ZeRO's use of torch.distributed raises on every rank are noise to the reader.
    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*all_gather_into_tensor.*", category=FutureWarning)
    train(load_job(args.job))
    dist.destroy_process_group()  # a clean exit, so the launcher sees every rank finish promptly


if __name__ == "__main__":
    main()
