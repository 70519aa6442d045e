"""The training script each rank runs under the `deepspeed` launcher.

    DS_ACCELERATOR=cpu deepspeed --num_gpus 2 --no_local_rank --module model.train --job job.json

The job JSON is a `model.job.Job`, written by `model.launch.launch_training`. Every rank trains
on its own disjoint stream of batches; rank 0 alone logs, prints and exports. A run whose
out_dir holds a complete checkpoint resumes from it.
Output in out_dir: metrics.jsonl, checkpoints/ (model/resume.py), model/ (model.safetensors,
config.json, tokenizer.json) and train_summary.json. A LoRA job (`lora`, model/lora.py) trains
adapters on the frozen init_from weights, checkpoints only them, exports the merged model and
writes the adapter beside it, in adapter/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import random
import resource
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from model import events
from model.checkpoint import export_adapter, export_model, load_weights, model_with_weights
from model.config import TrainConfig
from model.data import Batch
from model.ema import WeightAverage
from model.engine import (
    build_engine,
    full_fp32_state_dict,
    init_distributed,
    release_engine,
    set_lr_now,
    shut_down_distributed,
)
from model.faults import from_env
from model.files import file_hashes, write_atomically
from model.flops import flops_per_token, mfu
from model.gpt import GPT
from model.guard import HEALTH_TAG, STOPPED, Guard, TrainingStopped
from model.inputs import open_data
from model.job import Job, load_job
from model.launch import SUMMARY, write_completion
from model.lora import apply_lora, load_adapter_state, merge_lora, trainable_parameters
from model.resume import latest_good_checkpoint, load_checkpoint, save_checkpoint
from model.sft import IGNORE
from model.tracking import Tracker, make_tracker


def torch_threads(train: TrainConfig) -> int:
    """`train.torch_threads`, or this machine's cores shared evenly by the ranks on it."""
    if train.torch_threads > 0:
        return train.torch_threads
    local_ranks = int(os.environ.get("LOCAL_SIZE", os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, len(os.sched_getaffinity(0)) // local_ranks)


def mean_over_ranks(value: torch.Tensor) -> float:
    """The mean of a scalar tensor over all ranks (every rank must call); the tensor stays on
    its device (NCCL reduces GPU tensors only), and this is the step's one host sync."""
    tensor = value.detach().to(torch.float64).reshape(1)
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


def optimizer_step(
    engine: Any, batches: Iterator[Batch], grad_accum: int, loss_factor: float = 1.0
) -> torch.Tensor:
    """One optimizer step over `grad_accum` micro-batches; this rank's mean loss (on the
    device, not synced).
    `loss_factor` (model/faults.py) scales the losses of an injected fault; 1.0 otherwise."""
    loss_sum = torch.zeros((), device=engine.device)
    for _ in range(grad_accum):
        x, y = next(batches)
        _, loss = engine(x.to(engine.device), y.to(engine.device))
        if loss_factor != 1.0:
            loss = loss * loss_factor
        engine.backward(loss)
        engine.step()  # DeepSpeed steps the optimizer only at the accumulation boundary
        loss_sum += loss.detach().float()  # on the device: no host sync per micro-batch
    return loss_sum / grad_accum


def grad_norm(engine: Any) -> float | None:
    """The global gradient norm of the last step (inf when DeepSpeed skipped it); None when
    this engine does not compute one."""
    norm = engine.get_global_grad_norm()
    return None if norm is None else float(norm)


def build_model(job: Job, vocab_size: int) -> GPT:
    """The single-device model: fresh, seeded alike on every rank, or loaded from init_from;
    with `lora`, the loaded weights frozen and adapters (seeded alike) on the targets."""
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
    if job.lora is not None:
        apply_lora(model, job.lora)
    return model


def exported_model(job: Job, weights: dict[str, torch.Tensor]) -> GPT:
    """The model to export from the gathered float32 `weights`: all of them, or (LoRA) the
    adapters merged into the init_from weights, read again in float32 (the engine's copy of
    the frozen base may be bf16)."""
    if job.lora is None:
        return model_with_weights(job.model, weights)
    if job.init_from is None:  # Job.validate refuses this before launch
        raise ValueError("a LoRA job needs init_from: the base its adapters are merged into")
    model = GPT(job.model)
    load_weights(model, job.init_from)
    load_adapter_state(apply_lora(model, job.lora), weights)
    return merge_lora(model)


def peak_memory_mb() -> list[float]:
    """Every rank's peak resident memory so far (ru_maxrss, MB), by rank (every rank calls)."""
    mine = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux
    gathered: list[float | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, round(mine, 1))
    return [float(value or 0.0) for value in gathered]


def folder_mb(folder: Path | None) -> float:
    """The size of the files under `folder`, MB (0 for None)."""
    if folder is None:
        return 0.0
    return round(sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20, 3)


@dataclass
class Progress:
    """Where a run stands; saved in every checkpoint with the guard's state."""

    step: int = 0
    train_s: float = 0.0
    first_loss: float = math.nan
    steps_run: int = 0  # optimizer steps taken, rolled-back ones included


class Checkpoints:
    """Saving, resuming and rolling back: the run's checkpoints under out_dir/checkpoints."""

    def __init__(self, engine: Any, job: Job, data: Any, average: WeightAverage | None) -> None:
        self.engine, self.tc, self.data, self.average = engine, job.train, data, average
        self.root = job.out_dir / "checkpoints"
        self.trainable_only = job.lora is not None  # LoRA: the adapters, not the frozen base
        self.last: Path | None = None  # the newest checkpoint saved or resumed from

    def due(self, step: int) -> bool:
        every = self.tc.checkpoint_every
        return step == self.tc.steps or bool(every and step % every == 0)

    def save(self, progress: Progress, guard: Guard, tracker: Tracker) -> Path:
        """Save the step (every rank); copy it to MLflow as `train.checkpoint_artifacts` says."""
        folder = self.last = self._save(progress, guard)
        artifacts = self.tc.checkpoint_artifacts
        if artifacts == "all" or (artifacts == "last" and progress.step == self.tc.steps):
            tracker.log_artifacts(folder, f"checkpoints/{folder.name}")
        return folder

    def _save(self, progress: Progress, guard: Guard) -> Path:
        client = {
            "loader": self.data.batches.state_dict(),
            "summary": {
                "train_s": progress.train_s,
                "first_loss": progress.first_loss,
                "steps_run": progress.steps_run,
            },
            "guard": guard.state_dict(),
        }
        save_extra = self.average.save if self.average is not None else None
        return save_checkpoint(
            self.engine,
            self.root,
            progress.step,
            client,
            self.tc.keep_checkpoints,
            save_extra,
            self.trainable_only,
        )

    def latest(self) -> Path | None:
        """The newest good checkpoint (every rank must call)."""
        return latest_good_checkpoint(self.root)

    def _load(self, folder: Path) -> dict[str, Any]:
        client = load_checkpoint(self.engine, folder, self.trainable_only)
        if self.average is not None:
            self.average.load(folder)
        return client

    def resume(self, guard: Guard) -> tuple[Progress, Path | None]:
        """The newest good checkpoint loaded whole (data position and guard too), or a fresh
        start; the step comes from the checkpoint's own record."""
        folder = latest_good_checkpoint(self.root)
        if folder is None:
            return Progress(), None
        client = self._load(folder)
        self.last = folder
        self.data.batches.load_state_dict(client["loader"])
        if "guard" in client:
            guard.load_state_dict(client["guard"])
        summary = client["summary"]
        step = client["step"]
        progress = Progress(step, summary["train_s"], summary["first_loss"])
        progress.steps_run = summary.get("steps_run", step)
        return progress, folder

    def rollback(self, progress: Progress, reason: str) -> Progress:
        """Back to the newest good checkpoint: weights, optimizer, schedule and RNG, but not
        the data position (the batches since then are skipped) nor the guard's counts."""
        folder = latest_good_checkpoint(self.root)
        if folder is None:
            raise TrainingStopped(
                f"{reason}, and there is no checkpoint in {self.root} to roll back to: set "
                f"train.checkpoint_every to keep one"
            )
        client = self._load(folder)
        return dataclasses.replace(progress, step=client["step"])


class StepLog:
    """When to log and what: the loss, lr, speed, gradient norm and MFU of a log step."""

    def __init__(self, job: Job, world: int, tracker: Tracker, rank: int) -> None:
        self.tc, self.cfg, self.world, self.tracker, self.rank = (
            job.train,
            job.model,
            world,
            tracker,
            rank,
        )
        self.tokens_per_step = (
            self.tc.micro_batch * self.tc.grad_accum * world * self.cfg.block_size
        )
        self.since_step, self.since_s = 0, 0.0

    def start(self, progress: Progress) -> None:
        self.since_step, self.since_s = progress.step, progress.train_s

    def due(self, step: int) -> bool:
        return step == 1 or step % self.tc.log_every == 0 or step == self.tc.steps

    def step_metrics(
        self, progress: Progress, loss: float, lr: float, norm: float | None
    ) -> dict[str, float]:
        speed = (
            (progress.step - self.since_step)
            * self.tokens_per_step
            / max(progress.train_s - self.since_s, 1e-9)
        )
        self.start(progress)
        return {
            "train_loss": loss,
            "lr": lr,
            "tokens_per_s": speed,
            "grad_norm": math.nan if norm is None else norm,
            "mfu": mfu(self.cfg, speed, self.tc.peak_flops, self.world),
        }

    def summary(self, progress: Progress, final_loss: float, model: GPT) -> dict[str, Any]:
        """The run's losses, speed and size, for train_summary.json."""
        trainable, total = trainable_parameters(model)
        return {
            "steps": self.tc.steps,
            "first_loss": progress.first_loss,
            "final_loss": final_loss,
            "tokens_per_s": progress.steps_run * self.tokens_per_step / max(progress.train_s, 1e-9),
            "steps_run": progress.steps_run,
            "num_params": model.num_params(),
            "trainable_params": trainable,
            "trainable_fraction": trainable / total,
            "flops_per_token": flops_per_token(self.cfg),
        }

    def write(self, step: int, metrics: dict[str, float]) -> None:
        if metrics and self.rank == 0:
            self.tracker.log_metrics(metrics, step)
            shown = " | ".join(f"{k} {v:.4g}" for k, v in metrics.items())
            print(f"step {step}/{self.tc.steps} | {shown}", flush=True)
            events.emit("step", step=step, steps=self.tc.steps, metrics=metrics)

    def guard(self, step: int, verdict: Any, guard: Guard, to_step: int | None = None) -> None:
        """Say what the guard did at `step` (a skip, or a rollback to `to_step`)."""
        if to_step is None:
            text = f"guard: step {step}: {verdict.reason} ({guard.bad_steps} in all)"
            where = {}
        else:
            text = (
                f"guard: {verdict.reason}: rolled back to step {to_step}, lr x "
                f"{guard.lr_scale:g} (rollback {guard.rollbacks} of {self.tc.max_rollbacks})"
            )
            where = {"to_step": to_step}
        fields = {"action": verdict.action, "reason": verdict.reason, "counts": guard.counts()}
        self.say(text, "guard", step=step, **fields, **where)

    def say(self, text: str, kind: str = "", **fields: Any) -> None:
        """Print `text` for the log and, with `kind`, the same news as an event (rank 0)."""
        if self.rank == 0:
            print(text, flush=True)
            if kind:
                events.emit(kind, **fields)


class Evaluation:
    """Validation loss of the weights (and of their average, when one is kept)."""

    def __init__(
        self, engine: Any, data: Any, average: WeightAverage | None, tc: TrainConfig
    ) -> None:
        self.engine, self.data, self.average, self.tc = engine, data, average, tc
        self.val_loss = self.val_loss_ema = math.nan

    def due(self, step: int) -> bool:
        return step % self.tc.eval_every == 0 or step == self.tc.steps

    def run(self) -> dict[str, float]:
        """Evaluate now (every rank); the metrics to log."""
        self.val_loss = validation_loss(self.engine, self.data.val_batches())
        metrics = {"val_loss": self.val_loss}
        if self.average is not None:
            self.val_loss_ema = average_validation_loss(
                self.engine, self.average, self.data.val_batches()
            )
            metrics["val_loss_ema"] = self.val_loss_ema
        return metrics

    def summary(self) -> dict[str, Any]:
        return {
            # of the exported weights: the average's with train.ema_decay, else the last ones'
            "val_loss": self.exported,
            "val_loss_last_weights": self.val_loss,
            "exported_weights": "last" if self.average is None else f"ema {self.tc.ema_decay}",
        }

    @property
    def exported(self) -> float:
        """The validation loss of the weights the export holds."""
        return self.val_loss if self.average is None else self.val_loss_ema


def train(job: Job) -> dict[str, Any] | None:
    """Run the job on this rank; rank 0 returns the summary, the others None."""
    started = time.time()
    init_distributed()
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(torch_threads(job.train))
    cfg, tc, faults = job.model, job.train, from_env()
    data = open_data(job.data_dir, job.sft, cfg, tc, rank, world)
    model = build_model(job, data.vocab_size)
    guard = Guard(tc)
    engine = build_engine(model, tc, world, lr_factor=guard.lr_factor)
    average = WeightAverage(engine.module, tc.ema_decay) if tc.ema_decay else None
    # rank 0 alone logs (another rank's MLflow tracker would sample system metrics in a thread
    # that nobody stops)
    metrics_path = job.out_dir / "metrics.jsonl"
    tracker = make_tracker(job.tracking_uri, job.run_id, metrics_path) if rank == 0 else Tracker()
    log, evaluation = StepLog(job, world, tracker, rank), Evaluation(engine, data, average, tc)
    checkpoints = Checkpoints(engine, job, data, average)
    tracker.log_params(
        {
            "model.num_params": model.num_params(),
            "model.flops_per_token": flops_per_token(cfg),
            "train.world_size": world,
            "train.tokens_per_step": log.tokens_per_step,
        }
    )
    progress, resumed = checkpoints.resume(guard)
    if resumed is not None:
        text = f"resumed from {resumed} at step {progress.step}"
        log.say(text, "resumed", step=progress.step, checkpoint=str(resumed))
    log.start(progress)
    train_loss = math.nan
    try:
        while progress.step < tc.steps:
            step = progress.step + 1
            step_start, lr = time.time(), engine.get_lr()[0]  # the rate this step applies
            loss = optimizer_step(engine, data.batches, tc.grad_accum, faults.loss_factor(step))
            progress.step, progress.steps_run = step, progress.steps_run + 1
            progress.train_s += time.time() - step_start
            loss_value, norm = mean_over_ranks(loss), grad_norm(engine)
            verdict = guard.check(step, loss_value, norm, engine.was_step_applied())
            if verdict.action == "stop":
                raise TrainingStopped(verdict.reason)
            if verdict.action == "rollback":
                progress = checkpoints.rollback(progress, verdict.reason)
                set_lr_now(engine)
                log.guard(step, verdict, guard, to_step=progress.step)
                log.start(progress)
                continue
            if verdict.action == "skip":
                log.guard(step, verdict, guard)
            if verdict.applied and average is not None:
                average.update()
            if step == 1:
                progress.first_loss = loss_value
            train_loss = loss_value if verdict.applied else train_loss
            metrics = log.step_metrics(progress, loss_value, lr, norm) if log.due(step) else {}
            if evaluation.due(step):
                metrics |= evaluation.run()
            if metrics:
                metrics |= guard.counts()
            log.write(step, metrics)
            if checkpoints.due(step):
                checkpoints.save(progress, guard, tracker)
            if step == faults.kill_at_step and rank == 0:
                faults.kill_run()  # an injected SIGKILL of the whole run (model/faults.py)
    except TrainingStopped as stop:
        tracker.set_tags({HEALTH_TAG: STOPPED, "lmforge.train.stopped": str(stop)})
        tracker.log_metrics(guard.counts(), progress.step)
        tracker.close()
        where = f"run in {job.out_dir}; last good checkpoint: {checkpoints.latest()}"
        raise TrainingStopped(f"training stopped: {stop} ({where})") from None
    if math.isnan(evaluation.val_loss):  # resumed from the final checkpoint: evaluate it
        evaluation.run()
    health = guard.outcome(evaluation.exported)
    tracker.set_tags({HEALTH_TAG: health})
    tracker.close()
    # the weight average when one is kept, else the last weights, or LoRA's adapters (a
    # collective: every rank)
    lora = job.lora is not None
    weights = average.average if average is not None else full_fp32_state_dict(engine, lora)
    memory = peak_memory_mb()  # a collective too
    summary = None
    if rank == 0:
        export_model(exported_model(job, weights), cfg, job.out_dir / "model", data.tokenizer)
        adapter = {}
        if job.lora is not None:
            folder = export_adapter(weights, job.lora, str(job.init_from), job.out_dir / "adapter")
            adapter = {"adapter_sha256": file_hashes(folder)}
        summary = {
            **log.summary(progress, train_loss, model),
            **evaluation.summary(),
            "method": "lora" if lora else "full",
            "peak_memory_mb": memory,
            "checkpoint_mb": folder_mb(checkpoints.last),
            "world_size": world,
            "resumed_from": resumed.name if resumed else None,
            "health": health,
            "guard": guard.counts(),
            "export_sha256": file_hashes(job.out_dir / "model"),
            **adapter,
            "wall_s": round(time.time() - started, 2),
        }
        write_atomically(job.out_dir / SUMMARY, json.dumps(summary, indent=2) + "\n")
        print(f"done: {json.dumps(summary)}", flush=True)
        events.emit("done", summary=summary)
    dist.barrier()  # the summary is written before any rank says it finished
    write_completion(job.out_dir, rank, world)
    dist.barrier()  # every rank's record is written before any rank starts its teardown
    release_engine(engine)
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
    rank = dist.get_rank()
    shut_down_distributed()
    if rank in from_env().abort_at_exit_ranks:
        os.abort()  # an injected crash in teardown (model/faults.py)
    # End here, without the interpreter's finalization: torch keeps one gloo group (and its
    # worker threads) alive from C++ past destroy_process_group, and a worker thread that meets
    # a finalizing interpreter aborts the rank (model/engine.py, shut_down_distributed). Every
    # file is closed and the MLflow tracker's thread joined by now; flush what is printed.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
