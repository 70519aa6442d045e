"""DeepSpeed applied to a single-device model: the one place the engine is configured and built.

The model (model/gpt.py) knows nothing about ZeRO, precision or ranks; this module wraps it with a
torch AdamW (or, `train.optimizer = "muon"`, DeepSpeed's MuonWithAuxAdam), a warmup + cosine (or
warmup-stable-decay) learning-rate schedule, and optionally activation checkpointing and
torch.compile, so the same config drives a CPU run (`DS_ACCELERATOR=cpu`, gloo) and a GPU
cluster (NCCL).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

from model.config import TrainConfig


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


def check_train_config(train: TrainConfig, accelerator: str = "") -> None:
    """Raise ValueError naming the train.* setting DeepSpeed cannot honour (the dataclass's own
    rules, `TrainConfig.validate`, run again: the fields may have been set one by one); with
    `accelerator` (DeepSpeed's device name, "cpu" or "cuda", as DS_ACCELERATOR sets it) also
    those it cannot honour on that device."""
    train.validate()
    if train.precision == "fp16" and accelerator == "cpu":
        # DeepSpeed's engine would stop every rank with "Type fp16 is not supported on your
        # device." (its CPU accelerator has no fp16 unless the CPU does AVX512-FP16).
        raise ValueError(
            'train.precision="fp16" needs a GPU: DeepSpeed\'s CPU accelerator does not train '
            'in fp16; use train.precision="bf16" or "fp32" on CPU'
        )


def deepspeed_config(train: TrainConfig, world_size: int, accelerator: str = "") -> dict[str, Any]:
    """The DeepSpeed JSON config for `train` on `world_size` data-parallel ranks (of the
    `accelerator` device kind, when given: see check_train_config)."""
    check_train_config(train, accelerator)
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
    # No empty group: ZeRO drops one, and the schedule would then have a rate too many (LoRA
    # trains matrices only).
    groups = [group for group in groups if group["params"]]
    # A plain torch optimizer: DeepSpeed supports it under ZeRO and it needs no compiled op.
    return torch.optim.AdamW(groups, lr=train.lr, betas=(0.9, 0.95), eps=1e-8)


def is_muon_matrix(name: str, param: torch.nn.Parameter) -> bool:
    """Whether Muon steps this parameter: a 2-D weight inside the blocks (the hidden matrices).
    The embedding and the head (tied or not) and every 1-D gain or bias stay with AdamW."""
    return param.dim() == 2 and name.startswith("blocks.")


def muon_eager_on_cpu() -> None:
    """Run DeepSpeed's Muon update without torch.compile on CPU.

    DeepSpeed decorates `muon_update` and its Newton-Schulz kernels with torch.compile; on CPU
    inductor builds C++ for each matrix shape, 10-30 s per process on the first step (every
    test rank, every benchmark run), for no speed that matters at CPU sizes. The eager
    functions are the same code. On GPUs the compiled ones are kept."""
    from deepspeed.accelerator import get_accelerator
    from deepspeed.runtime.zero.muon import muon_optimizer, original_muon

    if get_accelerator().device_name() != "cpu":
        return
    for module in (original_muon, muon_optimizer):
        for name in (
            "muon_update",
            "zeropower_via_newtonschulz5",
            "zeropower_via_gram_newtonschulz",
        ):
            compiled = getattr(module, name, None)
            eager = getattr(compiled, "_torchdynamo_orig_callable", None)
            if eager is not None:
                setattr(module, name, eager)


def muon_with_adamw(model: torch.nn.Module, train: TrainConfig) -> torch.optim.Optimizer:
    """DeepSpeed's MuonWithAuxAdam: Muon for the blocks' matrices (`is_muon_matrix`), a torch
    AdamW for the rest (decay on the embedding and head, none on gains and biases).

    Each parameter is tagged `use_muon`, which DeepSpeed's ZeRO 1/2 optimizer reads: it keeps
    Muon's momentum per flat partition and orthogonalises the full matrix's update while it
    fills the partition, so ZeRO's flattening does not lose the 2-D shape. (Its own "Muon"
    config type would tag by names it expects, and would put our `tok_emb` under Muon.)"""
    from deepspeed.runtime.zero.muon.muon_optimizer import MuonWithAuxAdam

    muon_eager_on_cpu()
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    for name, param in named:
        param.use_muon = is_muon_matrix(name, param)
    adam = {"lr": train.lr, "betas": (0.9, 0.95), "eps": 1e-8, "use_muon": False}
    groups = [
        {
            "params": [p for _, p in named if p.use_muon],
            "use_muon": True,
            "lr": train.muon_lr,
            "momentum": train.muon_momentum,
            "weight_decay": train.muon_weight_decay,
        },
        {"params": [p for _, p in named if not p.use_muon and p.dim() >= 2], **adam}
        | {"weight_decay": train.weight_decay},
        {"params": [p for _, p in named if p.dim() < 2], **adam} | {"weight_decay": 0.0},
    ]
    groups = [group for group in groups if group["params"]]  # as in adamw: no empty group
    return MuonWithAuxAdam(groups, adam_optimizer=torch.optim.AdamW, adam_w_mode=True)


def build_engine(
    model: torch.nn.Module,
    train: TrainConfig,
    world_size: int,
    lr_factor: Callable[[], float] = lambda: 1.0,
) -> Any:
    """Wrap `model` in a DeepSpeed engine (optimizer, LR schedule, ZeRO stage, precision); the
    schedule's rate is multiplied by `lr_factor()` (the training guard lowers it on rollback)."""
    import deepspeed  # imported here so the model and its tests do not pay for it
    from deepspeed.accelerator import get_accelerator

    if train.activation_checkpointing:
        checkpoint_activations(model)
    if train.compile:
        model.compile()  # in place: parameter names stay those of the plain model
    optimizer = muon_with_adamw(model, train) if train.optimizer == "muon" else adamw(model, train)
    # LambdaLR multiplies each group's initial lr (Muon's and AdamW's alike: the schedule scales
    # both by the same factor); DeepSpeed steps it once per optimizer step.
    # A plain function (not saved in checkpoints): the factor belongs to the guard's state.
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor() * lr_at(s, train) / train.lr
    )
    engine, _, _, _ = deepspeed.initialize(
        model=model,
        optimizer=optimizer,
        lr_scheduler=schedule,
        config=deepspeed_config(train, world_size, get_accelerator().device_name()),
    )
    return engine


def set_lr_now(engine: Any) -> None:
    """Set the optimizer's rates to what the schedule gives at its current step now (after a
    rollback loaded an older step's rates, or the factor changed)."""
    schedule = engine.lr_scheduler
    for group, base, rule in zip(
        schedule.optimizer.param_groups, schedule.base_lrs, schedule.lr_lambdas, strict=True
    ):
        group["lr"] = base * rule(schedule.last_epoch)


def full_fp32_state_dict(engine: Any, trainable_only: bool = False) -> dict[str, torch.Tensor]:
    """Every parameter (or, `trainable_only`, every one that trains: LoRA's adapters) at full
    float32 precision, gathered from ZeRO partitions (all ranks call)."""
    from deepspeed.utils import safe_get_full_fp32_param

    state = {}
    for name, param in engine.module.named_parameters():
        if trainable_only and not param.requires_grad:
            continue
        # The optimizer's fp32 master copy where ZeRO or bf16 keeps one (a collective), else
        # the parameter itself (fp32 without ZeRO).
        full = safe_get_full_fp32_param(param)
        state[name] = (param.detach() if full is None else full).float().cpu()
    return state


def release_engine(engine: Any) -> None:
    """Remove the gradient hooks DeepSpeed registered on the parameters (`engine.destroy()`).

    They tie the engine, its ZeRO optimizer and the parameters together through autograd's C++
    nodes, a cycle Python's collector cannot see, so without this they (and the process groups
    they hold) live until the interpreter itself is torn down."""
    engine.destroy()


def shut_down_distributed() -> None:
    """Destroy every process group while the interpreter is whole.

    `dist.destroy_process_group()` only forgets the groups: a group's gloo worker threads run
    until the last reference to it goes. DeepSpeed keeps references (the engine, its optimizer,
    each parameter's `_dp_group`, `deepspeed.utils.groups`), so both groups of a run, with
    their six threads, used to live into interpreter finalization, where a worker thread that
    still held a tensor touched a Python object and was ended inside a destructor: 'terminate
    called without an active exception', exit -6, now and then, after a run had finished.
    With `release_engine` first, this frees DeepSpeed's group; torch still holds the default
    group from C++ (no Python referrer is left), so `model.train` then ends the rank with
    `os._exit` instead of finalizing the interpreter."""
    import gc

    import torch.distributed as dist
    from deepspeed.utils import groups

    for name, value in list(vars(groups).items()):
        if isinstance(value, dist.ProcessGroup):
            setattr(groups, name, None)
    if dist.is_initialized():
        dist.destroy_process_group()
    gc.collect()
