"""DeepSpeed applied to a single-device model: the one place the engine is configured and built.

The model (model/gpt.py) knows nothing about ZeRO, precision or ranks; this module wraps it with a
torch AdamW, a warmup + cosine (or warmup-stable-decay) learning-rate schedule, and optionally
activation checkpointing and torch.compile, so the same config drives a CPU run
(`DS_ACCELERATOR=cpu`, gloo) and a GPU cluster (NCCL).
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

from model.config import TrainConfig

PRECISIONS = ("bf16", "fp16", "fp32")
SCHEDULES = ("cosine", "wsd")
ARTIFACT_CHOICES = ("last", "all", "none")


def init_distributed() -> None:
    """Join the process group the `deepspeed` launcher set up: gloo on CPU, NCCL on GPUs."""
    import deepspeed
    import deepspeed.ops
    from deepspeed.accelerator import get_accelerator

    accelerator = get_accelerator()
    if accelerator.device_name() == "cpu":
        # On CPU DeepSpeed JIT-compiles a shared-memory all-reduce op with g++ (~40 s on a
        # machine's first start) that only tensor-parallel inference calls; training's
        # collectives go through gloo. Marking the op incompatible skips the build.
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    deepspeed.init_distributed(dist_backend=accelerator.communication_backend_name())


def init_single_process(port: int) -> None:
    """A one-rank process group in this process (benchmarks, notebooks): no launcher needed."""
    defaults = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_SIZE": "1"}
    defaults |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    init_distributed()


def check_train_config(train: TrainConfig) -> None:
    """Raise ValueError naming the train.* setting DeepSpeed cannot honour."""
    if train.precision not in PRECISIONS:
        raise ValueError(f"train.precision must be one of {PRECISIONS}, got {train.precision!r}")
    if train.zero_stage not in (0, 1, 2, 3):
        raise ValueError(f"train.zero_stage must be 0, 1, 2 or 3, got {train.zero_stage}")
    if train.schedule not in SCHEDULES:
        raise ValueError(f"train.schedule must be one of {SCHEDULES}, got {train.schedule!r}")
    if train.offload_optimizer and train.zero_stage == 0:
        raise ValueError("train.offload_optimizer needs train.zero_stage >= 1")
    if train.offload_params and train.zero_stage != 3:
        raise ValueError("train.offload_params needs train.zero_stage = 3")
    if min(train.micro_batch, train.grad_accum, train.steps, train.keep_checkpoints) < 1:
        raise ValueError(
            "train.micro_batch, train.grad_accum, train.steps and train.keep_checkpoints "
            "must be >= 1"
        )
    if not 0.0 <= train.ema_decay < 1.0:
        raise ValueError(f"train.ema_decay must be in [0, 1) (0 = off), got {train.ema_decay}")
    if train.ema_decay and train.zero_stage == 3:
        raise ValueError(
            "train.ema_decay needs train.zero_stage <= 2: ZeRO 3 splits the weights over the "
            "ranks, so no rank holds the weights to average; use stage 2 or set ema_decay = 0"
        )
    if train.checkpoint_artifacts not in ARTIFACT_CHOICES:
        raise ValueError(
            f"train.checkpoint_artifacts must be one of {ARTIFACT_CHOICES}, "
            f"got {train.checkpoint_artifacts!r}"
        )


def deepspeed_config(train: TrainConfig, world_size: int) -> dict[str, Any]:
    """The DeepSpeed JSON config for `train` on `world_size` data-parallel ranks."""
    check_train_config(train)
    zero: dict[str, Any] = {"stage": train.zero_stage}
    if train.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu"}
    if train.offload_params:
        zero["offload_param"] = {"device": "cpu"}
    return {
        "train_micro_batch_size_per_gpu": train.micro_batch,
        "gradient_accumulation_steps": train.grad_accum,
        "train_batch_size": train.micro_batch * train.grad_accum * world_size,
        "zero_optimization": zero,
        # Our torch AdamW steps the offloaded fp32 state too (DeepSpeed's CPUAdam is a compiled op).
        "zero_force_ds_cpu_optimizer": False,
        "bf16": {"enabled": train.precision == "bf16"},
        # loss_scale 0: dynamic loss scaling, starting at 2^16 and halved on overflow.
        "fp16": {"enabled": train.precision == "fp16", "loss_scale": 0, "initial_scale_power": 16},
        "gradient_clipping": train.grad_clip,
        # We log through model/tracking.py; DeepSpeed's own step prints would only add noise.
        "steps_per_print": 1_000_000_000,
        "wall_clock_breakdown": False,
    }


def lr_at(step: int, train: TrainConfig) -> float:
    """Learning rate after `step` optimizer steps: linear warmup, then cosine down to min_lr, or
    (schedule "wsd") constant until the last `decay_fraction` of steps, then linear to min_lr."""
    if step < train.warmup_steps:
        return train.lr * (step + 1) / train.warmup_steps
    if train.schedule == "wsd":
        decay_steps = max(1, round(train.decay_fraction * train.steps))
        progress = min(1.0, max(0, step - (train.steps - decay_steps)) / decay_steps)
        return train.lr - progress * (train.lr - train.min_lr)
    decay_steps = max(1, train.steps - train.warmup_steps)
    progress = min(1.0, (step - train.warmup_steps) / decay_steps)
    return train.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (train.lr - train.min_lr)


def checkpoint_activations(model: torch.nn.Module) -> None:
    """Recompute each transformer block in the backward pass instead of storing its activations.

    Wraps the blocks' forward methods, so parameter names (and checkpoints) stay unchanged."""
    for block in model.blocks:
        forward = block.forward
        block.forward = functools.partial(checkpoint, forward, use_reentrant=False)


def adamw(model: torch.nn.Module, train: TrainConfig) -> torch.optim.AdamW:
    """AdamW that decays matrices and embeddings (>= 2-D) but not norms' gains or biases."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": train.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    # A plain torch optimizer: DeepSpeed supports it under ZeRO and it needs no compiled op.
    return torch.optim.AdamW(groups, lr=train.lr, betas=(0.9, 0.95), eps=1e-8)


def build_engine(model: torch.nn.Module, train: TrainConfig, world_size: int) -> Any:
    """Wrap `model` in a DeepSpeed engine (optimizer, LR schedule, ZeRO stage, precision)."""
    import deepspeed  # imported here so the model and its tests do not pay for it

    if train.activation_checkpointing:
        checkpoint_activations(model)
    if train.compile:
        model.compile()  # in place: parameter names stay those of the plain model
    optimizer = adamw(model, train)
    # LambdaLR multiplies each group's initial lr; DeepSpeed steps it once per optimizer step.
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_at(s, train) / train.lr)
    engine, _, _, _ = deepspeed.initialize(
        model=model,
        optimizer=optimizer,
        lr_scheduler=schedule,
        config=deepspeed_config(train, world_size),
    )
    return engine


def full_fp32_state_dict(engine: Any) -> dict[str, torch.Tensor]:
    """Every parameter at full float32 precision, gathered from ZeRO partitions (all ranks call)."""
    from deepspeed.utils import safe_get_full_fp32_param

    state = {}
    for name, param in engine.module.named_parameters():
        # The optimizer's fp32 master copy where ZeRO or bf16 keeps one (a collective), else
        # the parameter itself (fp32 without ZeRO).
        full = safe_get_full_fp32_param(param)
        state[name] = (param.detach() if full is None else full).float().cpu()
    return state
