"""Typed configuration of the model and of its training: plain dataclasses, defaults in code.

The resolved values are saved with every checkpoint so a model can be rebuilt from its folder.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ModelConfig:
    """Shape of the GPT. `vocab_size` 0 means: take it from the trained tokenizer."""

    n_layer: int = 4
    n_head: int = 4
    n_kv_head: int = 0  # key/value heads for grouped-query attention; 0 means n_head (plain MHA)
    n_embd: int = 128
    block_size: int = 128
    vocab_size: int = 0
    dropout: float = 0.0
    bias: bool = False
    rope_theta: float = 10000.0  # base of the rotary position embedding's angle frequencies


@dataclass
class TrainConfig:
    """One training run: global batch = micro_batch * grad_accum * num_ranks sequences."""

    steps: int = 300
    micro_batch: int = 16
    grad_accum: int = 1
    num_ranks: int = 1
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
