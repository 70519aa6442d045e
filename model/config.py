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
    zero_stage: int = 2
    precision: str = "bf16"
    lr: float = 3e-3
    min_lr: float = 3e-4
    warmup_steps: int = 20
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    log_every: int = 10
    eval_every: int = 100
    eval_batches: int = 8
    seed: int = 1337
    torch_threads: int = 0
