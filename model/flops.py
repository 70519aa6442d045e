"""Parameter count, training FLOPs per token and model FLOPs utilisation, from the config alone.

FLOPs per trained token follow the PaLM paper's appendix B (as nanoGPT's `estimate_mfu`):
    6 * N + 12 * L * H * Q * T
N parameters (a tied embedding once: its lookup is free but the output head is a full matmul
with the same matrix), L layers, H query heads, Q head size, T tokens of context. 6N is the
forward (2N) plus backward (4N) of every weight matmul; 12·L·H·Q·T the attention scores and
weighted sum (QK^T and AV, 2 · 2 · T · H · Q per layer forward, times 3 with the backward).
MFU = tokens/s * FLOPs per token / (peak FLOP/s of one device * devices).
"""

from __future__ import annotations

import math

from model.gpt import ModelConfig


def param_count(cfg: ModelConfig) -> int:
    """Parameters of GPT(cfg), counted from the shapes (equals GPT(cfg).num_params())."""
    C, V = cfg.n_embd, cfg.vocab_size
    head_dim = C // cfg.n_head
    kv = cfg.n_kv_head or cfg.n_head
    hidden = cfg.hidden_size
    bias = cfg.bias
    attention = C * C + C * 2 * kv * head_dim + C * C  # q, kv and out projections
    attention += (C + 2 * kv * head_dim + C) if bias else 0
    ins = 1 if cfg.mlp == "relu2" else 2  # ReLU²: up only; SwiGLU: gate and up
    mlp = C * ins * hidden + hidden * C + ((ins * hidden + C) if bias else 0)
    block = attention + mlp + 2 * C  # two RMSNorm gains
    head = 0 if cfg.tie_embeddings else V * C  # an untied head is a matrix of its own
    return V * C + head + cfg.n_layer * block + C  # embedding (+ head) + blocks + final norm


def flops_per_token(cfg: ModelConfig) -> float:
    """Training FLOPs (forward + backward) per token at full context: 6N + 12·L·H·Q·T."""
    head_dim = cfg.n_embd // cfg.n_head
    attention = 12 * cfg.n_layer * cfg.n_head * head_dim * cfg.block_size
    return 6 * param_count(cfg) + attention


def mfu(cfg: ModelConfig, tokens_per_s: float, peak_flops: float, devices: int) -> float:
    """Model FLOPs utilisation in [0, 1]; NaN when no peak FLOP/s is configured."""
    if peak_flops <= 0:
        return math.nan
    return tokens_per_s * flops_per_token(cfg) / (peak_flops * devices)
