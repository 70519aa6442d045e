"""Typed configuration of training: a plain dataclass, defaults in code.

The model's own shape, `ModelConfig`, lives beside the model in model/gpt.py (like nanoGPT's
GPTConfig), so that file needs nothing but torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    """One training run: global batch = micro_batch * grad_accum * ranks sequences, where ranks
    is `num_ranks`, times the hosts in `hostfile` when one is given."""

    steps: int = 300
    micro_batch: int = 16
    grad_accum: int = 1
    num_ranks: int = 1  # ranks on this host; with a hostfile, ranks per host
    # A DeepSpeed hostfile (`host slots=N` per line) to train across its hosts; "" = this host.
    hostfile: str = ""
    # The first host's address the ranks rendezvous at; "" = 127.0.0.1 for one host, else the
    # address DeepSpeed reads from the first host over ssh (`hostname -I`).
    master_addr: str = ""
    zero_stage: int = (
        2  # 0 plain data parallel; 1 shards optimizer state, 2 + gradients, 3 + params
    )
    offload_optimizer: bool = False  # ZeRO >= 1: optimizer state in CPU memory
    offload_params: bool = False  # ZeRO 3: parameters in CPU memory
    precision: str = "bf16"  # bf16, fp16 (dynamic loss scaling, for GPUs without bf16) or fp32
    lr: float = 3e-3
    min_lr: float = 3e-4
    warmup_steps: int = 20
    schedule: str = "cosine"  # after warmup: "cosine" to min_lr, or "wsd" (warmup-stable-decay)
    decay_fraction: float = 0.2  # wsd: the last fraction of steps decays linearly to min_lr
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    # 0 = off; else the decay of a float32 moving average of the weights (of their bf16 copies
    # under bf16), which is evaluated (val_loss_ema) and exported instead of the last weights
    # (model/ema.py; ZeRO <= 2)
    ema_decay: float = 0.0
    activation_checkpointing: bool = False  # recompute each block in the backward: less memory
    compile: bool = False  # torch.compile the model before DeepSpeed wraps it
    log_every: int = 10
    eval_every: int = 100
    eval_batches: int = 8
    checkpoint_every: int = 0  # save a resumable checkpoint every N steps (0: at the end only)
    keep_checkpoints: int = 2  # the newest K complete checkpoints are kept
    checkpoint_artifacts: str = "last"  # to MLflow: "last", "all" (each one saved) or "none"
    # Guards for unattended runs (model/guard.py). A step with a non-finite loss or gradient
    # norm is skipped and counted; max_bad_steps of them in a row, or a loss above the mean +
    # spike_sigmas x std of the last spike_window good steps (0 = no spike check), roll back to
    # the last complete checkpoint with the learning rate scaled by rollback_lr_factor; a
    # rollback past max_rollbacks (or with no checkpoint yet) stops the run with a message.
    max_bad_steps: int = 3
    spike_window: int = 50
    spike_sigmas: float = 6.0
    max_rollbacks: int = 2
    rollback_lr_factor: float = 0.5
    peak_flops: float = 0.0  # peak FLOP/s of one device, for MFU (python -m model.peak_flops)
    seed: int = 1337
    torch_threads: int = 0
