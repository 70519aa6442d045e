"""The training script each rank runs under the `deepspeed` launcher.

    DS_ACCELERATOR=cpu deepspeed --num_gpus 2 --no_local_rank --module model.train --job job.json

The job JSON (written by `model.launch.launch_training`) holds `model` (ModelConfig), `train`
(TrainConfig), `data_dir` (a tokenize output folder), `out_dir`, `tracking` (`uri`, `run_id`)
and optionally `init_from` (an exported model folder whose weights start the run) and `sft`
(`train`, `val` JSONL files and `tokenizer`: fine-tune on chat examples instead of token shards;
`data_dir` is then not needed). Every rank trains on its own disjoint stream of batches; rank 0
alone logs, prints and exports. A run whose out_dir holds a complete checkpoint resumes from it.
Output in out_dir: metrics.jsonl, checkpoints/ (model/resume.py), model/ (model.safetensors,
config.json, tokenizer.json) and train_summary.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from model.checkpoint import export_model, load_weights, model_with_weights
from model.config import TrainConfig
from model.data import Batch
from model.ema import WeightAverage
from model.engine import build_engine, full_fp32_state_dict, init_distributed
from model.flops import flops_per_token, mfu
from model.gpt import GPT, ModelConfig
from model.inputs import open_data
from model.resume import latest_good_checkpoint, load_checkpoint, save_checkpoint
from model.sft import IGNORE
from model.tracking import Tracker, make_tracker


@dataclass
class Job:
    """One training job, as read from job.json."""

    model: ModelConfig
    train: TrainConfig
    data_dir: Path | None
    out_dir: Path
    tracking_uri: str = ""
    run_id: str = ""
    init_from: Path | None = None
    sft: dict[str, str] | None = None


def load_job(path: Path) -> Job:
    """Read and type-check job.json; a missing or unknown key fails with its name."""
    raw = json.loads(Path(path).read_text())
    sft = raw.get("sft")
    missing = {"model", "train", "out_dir"} - set(raw) | (
        {"data_dir"} - set(raw) if not sft else set()
    )
    if sft is not None and set(sft) != {"train", "val", "tokenizer"}:
        raise ValueError(f"{path}: 'sft' needs exactly the keys train, val, tokenizer; got {sft}")
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
        Path(raw["data_dir"]) if raw.get("data_dir") else None,
        Path(raw["out_dir"]),
        tracking.get("uri", ""),
        tracking.get("run_id", ""),
        Path(raw["init_from"]) if raw.get("init_from") else None,
        sft,
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
def validation_loss(engine: Any, batches: Iterator[Batch]) -> float:
    """Mean loss per target token (padding and prompts excluded) over the validation batches.

    Every rank evaluates the same batches: under ZeRO-3 a forward pass needs all ranks."""
    engine.eval()
    total, count = 0.0, 0
    for x, y in batches:
        _, loss = engine(x.to(engine.device), y.to(engine.device))
        targets = int((y != IGNORE).sum())
        total += loss.item() * targets
        count += targets
    engine.train()
    return total / count


def average_validation_loss(engine: Any, average: WeightAverage, batches: Iterator[Batch]) -> float:
    """`validation_loss` of the weight average (swapped into the engine's module meanwhile)."""
    with average.swapped_in():
        return validation_loss(engine, batches)


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


def build_model(job: Job, vocab_size: int) -> GPT:
    """The single-device model: fresh, seeded alike on every rank, or loaded from init_from."""
    if job.model.vocab_size < vocab_size:
        raise ValueError(
            f"model.vocab_size={job.model.vocab_size} < the data's vocabulary {vocab_size}"
        )
    torch.manual_seed(job.train.seed)  # the same initial weights on every rank
    random.seed(job.train.seed)
    np.random.seed(job.train.seed)
    model = GPT(job.model)
    if job.init_from is not None:
        load_weights(model, job.init_from)
    return model


def train(job: Job) -> dict[str, Any] | None:
    """Run the job on this rank; rank 0 returns the summary, the others None."""
    started = time.time()
    init_distributed()
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(torch_threads(job.train))
    cfg, tc = job.model, job.train
    data = open_data(job.data_dir, job.sft, cfg, tc, rank, world)
    model = build_model(job, data.vocab_size)
    num_params = model.num_params()
    engine = build_engine(model, tc, world)
    average = WeightAverage(engine.module, tc.ema_decay) if tc.ema_decay else None
    tracker = make_tracker(job.tracking_uri, job.run_id, job.out_dir / "metrics.jsonl")
    tracker = tracker if rank == 0 else Tracker()
    tokens_per_step = tc.micro_batch * tc.grad_accum * world * cfg.block_size
    tracker.log_params(
        {
            "model.num_params": num_params,
            "model.flops_per_token": flops_per_token(cfg),
            "train.world_size": world,
            "train.tokens_per_step": tokens_per_step,
        }
    )
    root = job.out_dir / "checkpoints"
    state = {"train_s": 0.0, "first_loss": math.nan}
    resumed = latest_good_checkpoint(root)
    if resumed is not None:
        client = load_checkpoint(engine, resumed)
        data.batches.load_state_dict(client["loader"])
        if average is not None:
            average.load(resumed)
        state = client["summary"]
        if rank == 0:
            print(f"resumed from {resumed} at step {client['step']}", flush=True)
    done = 0 if resumed is None else int(resumed.name.removeprefix("step"))
    train_s, logged_s, logged_step = state["train_s"], state["train_s"], done
    first_loss, train_loss = state["first_loss"], math.nan
    val_loss = val_loss_ema = math.nan
    for step in range(done + 1, tc.steps + 1):
        step_start, lr = time.time(), engine.get_lr()[0]  # the rate this step applies
        loss = optimizer_step(engine, data.batches, tc.grad_accum)
        if average is not None:
            average.update()
        train_s += time.time() - step_start
        metrics: dict[str, float] = {}
        if step == 1 or step % tc.log_every == 0 or step == tc.steps:
            train_loss = mean_over_ranks(loss.item())
            first_loss = train_loss if step == 1 else first_loss
            speed = (step - logged_step) * tokens_per_step / max(train_s - logged_s, 1e-9)
            norm = engine.get_global_grad_norm()
            metrics |= {
                "train_loss": train_loss,
                "lr": lr,
                "tokens_per_s": speed,
                "grad_norm": math.nan if norm is None else float(norm),
                "mfu": mfu(cfg, speed, tc.peak_flops, world),
            }
            logged_s, logged_step = train_s, step
        if step % tc.eval_every == 0 or step == tc.steps:
            val_loss = metrics["val_loss"] = validation_loss(engine, data.val_batches())
            if average is not None:
                val_loss_ema = average_validation_loss(engine, average, data.val_batches())
                metrics["val_loss_ema"] = val_loss_ema
        if metrics and rank == 0:
            tracker.log_metrics(metrics, step)
            shown = " | ".join(f"{k} {v:.4g}" for k, v in metrics.items())
            print(f"step {step}/{tc.steps} | {shown}", flush=True)
        if step == tc.steps or (tc.checkpoint_every and step % tc.checkpoint_every == 0):
            client = {
                "loader": data.batches.state_dict(),
                "summary": {"train_s": train_s, "first_loss": first_loss},
            }
            folder = save_checkpoint(
                engine, root, step, client, tc.keep_checkpoints, average and average.save
            )
            if tc.checkpoint_artifacts == "all" or (
                tc.checkpoint_artifacts == "last" and step == tc.steps
            ):
                tracker.log_artifacts(folder, f"checkpoints/{folder.name}")
    tracker.close()
    if math.isnan(val_loss):  # resumed from the final checkpoint: evaluate it (all ranks)
        val_loss = validation_loss(engine, data.val_batches())
        if average is not None:
            val_loss_ema = average_validation_loss(engine, average, data.val_batches())
    # the weight average when one is kept, else the last weights (a collective: every rank)
    weights = average.average if average is not None else full_fp32_state_dict(engine)
    if rank != 0:
        return None
    export_model(model_with_weights(cfg, weights), cfg, job.out_dir / "model", data.tokenizer)
    summary = {
        "steps": tc.steps,
        "first_loss": first_loss,
        "final_loss": train_loss,
        # of the exported weights: the average's with train.ema_decay, else the last weights'
        "val_loss": val_loss if average is None else val_loss_ema,
        "val_loss_last_weights": val_loss,
        "exported_weights": "last" if average is None else f"ema {tc.ema_decay}",
        "tokens_per_s": tc.steps * tokens_per_step / max(train_s, 1e-9),
        "num_params": num_params,
        "flops_per_token": flops_per_token(cfg),
        "world_size": world,
        "resumed_from": resumed.name if resumed else None,
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
