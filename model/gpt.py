"""A decoder-only transformer in one file, with its config; imports only torch.

Llama-style blocks: RMSNorm pre-norm, rotary position embedding (RoPE), grouped-query causal
attention through `F.scaled_dot_product_attention`, a SwiGLU MLP, and an output head tied to the
token embedding (or a matrix of its own, `tie_embeddings = False`, as some imported checkpoints
have). Options from the modded-nanogpt speedrun, all off by default: RMSNorm of queries and keys
(`qk_norm`), a ReLU² MLP (`mlp = "relu2"`), a tanh soft cap on the logits (`logit_softcap`) and
zero-initialised output projections (`zero_init_proj`).
Shapes in comments: B batch, T time, C n_embd, H heads, K kv heads, D head dim.
The model knows nothing about DeepSpeed: parallelism is applied from outside (model/engine.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F


class ModelConfigError(ValueError):
    """A model.* setting that cannot build a GPT: `model.<key> = <value>: <problem>`.

    Shaped like model.config.SettingError (`section`, `key`, `value`, `problem`, `related`),
    which this file does not import: it needs nothing but torch."""

    def __init__(self, key: str, value: object, problem: str, related: tuple[str, ...] = ()):
        self.section, self.key, self.value, self.problem = "model", key, value, problem
        self.related = related
        super().__init__(f"model.{key} = {value!r}: {problem}")


@dataclass
class ModelConfig:
    """Shape of the GPT, checked when built (`validate`). `vocab_size` 0 means: take it from
    the trained tokenizer."""

    n_layer: int = 4
    """Transformer blocks (>= 1)."""
    n_head: int = 4
    """Query heads (>= 1); n_embd must be n_head times an even head size."""
    n_kv_head: int = 0
    """Key/value heads for grouped-query attention, dividing n_head; 0 means n_head (MHA)."""
    n_embd: int = 128
    """Width of the residual stream."""
    block_size: int = 128
    """Context length in tokens (>= 1)."""
    vocab_size: int = 0
    """Tokens in the vocabulary; 0: set from the trained tokenizer."""
    dropout: float = 0.0
    """Dropout after the embedding and each residual branch (in [0, 1))."""
    bias: bool = False
    """Biases in the linear layers."""
    rope_theta: float = 10000.0
    """Base of the rotary position embedding's angle frequencies (> 0)."""
    tie_embeddings: bool = True
    """The output head reuses the token embedding matrix; False: a head of its own."""
    mlp_hidden: int = 0
    """Width of the MLP's hidden layer; 0: for SwiGLU ~8/3 n_embd rounded up to a multiple of
    32, for ReLU² 4 n_embd (the same parameters either way)."""
    norm_eps: float = 1e-6
    """The RMSNorms' epsilon (> 0)."""
    mlp: Literal["swiglu", "relu2"] = "swiglu"
    """"swiglu": down(silu(gate(x)) * up(x)) (Llama); "relu2": down(relu(up(x))²), the
    speedrun's non-gated MLP (no transformers Llama equivalent: export_hf refuses it)."""
    qk_norm: bool = False
    """RMSNorm (no gain) of each head's queries and keys before RoPE: bounded attention logits,
    which lets a higher learning rate train (no Llama equivalent: export_hf refuses it)."""
    logit_softcap: float = 0.0
    """0 = off; else logits = cap * tanh(logits / cap), bounded in (-cap, cap) (the speedrun
    uses 30, later 15; no Llama equivalent: export_hf refuses it)."""
    zero_init_proj: bool = False
    """Zero-initialise the attention and MLP output projections (each block starts as the
    identity) and, when untied, the head; init only, so export is unaffected."""

    @property
    def hidden_size(self) -> int:
        """The MLP's hidden width in use (`mlp_hidden`, or the default from n_embd)."""
        if self.mlp_hidden:
            return self.mlp_hidden
        return 4 * self.n_embd if self.mlp == "relu2" else 32 * math.ceil(8 * self.n_embd / 3 / 32)

    def __post_init__(self) -> None:
        self.validate()

    def _require(self, ok: bool, key: str, problem: str, *related: str) -> None:
        if not ok:
            raise ModelConfigError(key, getattr(self, key), problem, related)

    def validate(self) -> None:
        """Raise ModelConfigError naming the first setting that cannot build a GPT (a
        `vocab_size` of 0 passes: the tokenizer sets it; `check_config` refuses it)."""
        for key in ("n_layer", "n_head", "n_embd", "block_size"):
            self._require(getattr(self, key) >= 1, key, f"{key} must be >= 1")
        self._require(
            self.vocab_size >= 0, "vocab_size", "vocab_size must be >= 0 (0: from the tokenizer)"
        )
        self._require(
            self.n_embd % self.n_head == 0 and (self.n_embd // self.n_head) % 2 == 0,
            "n_embd",
            f"n_embd must be model.n_head = {self.n_head} times an even head size "
            "(RoPE rotates pairs of dimensions)",
            "n_head",
        )
        self._require(
            self.n_kv_head >= 0 and self.n_head % (self.n_kv_head or self.n_head) == 0,
            "n_kv_head",
            f"n_kv_head must divide model.n_head = {self.n_head} (0 = n_head)",
            "n_head",
        )
        self._require(0.0 <= self.dropout < 1.0, "dropout", "dropout must be in [0, 1)")
        self._require(self.rope_theta > 0, "rope_theta", "rope_theta must be > 0")
        self._require(self.mlp_hidden >= 0, "mlp_hidden", "mlp_hidden must be >= 0 (0: default)")
        self._require(self.norm_eps > 0, "norm_eps", "norm_eps must be > 0")
        self._require(
            self.mlp in ("swiglu", "relu2"), "mlp", "mlp must be one of 'swiglu', 'relu2'"
        )
        self._require(
            isinstance(self.logit_softcap, (int, float)) and self.logit_softcap >= 0,
            "logit_softcap",
            "logit_softcap must be >= 0 (0 = off; the speedrun uses 15 to 30)",
        )


# Named shapes (vocab_size 0: taken from the tokenizer); configs/*.toml use the same numbers.
PRESETS = {
    "debug": ModelConfig(n_layer=2, n_head=2, n_embd=64, block_size=64),
    "small": ModelConfig(n_layer=6, n_head=6, n_embd=384, block_size=256),
    "gpt2-124m": ModelConfig(n_layer=12, n_head=12, n_embd=768, block_size=1024),
    "350m": ModelConfig(n_layer=24, n_head=16, n_embd=1024, block_size=1024),
}


class KVCache:
    """Keys and values of the tokens generated so far, per layer, each (B, K, T, D)."""

    def __init__(self, n_layer: int) -> None:
        self.keys: list[torch.Tensor | None] = [None] * n_layer
        self.values: list[torch.Tensor | None] = [None] * n_layer

    @property
    def length(self) -> int:
        """Tokens already cached (the position of the next one)."""
        first = self.keys[0]
        return 0 if first is None else first.size(2)


class RMSNorm(nn.Module):
    """Scale by the root-mean-square (no mean subtraction, no bias): cheaper than LayerNorm."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in float32 so bf16 activations do not lose the small squares.
        norm = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)
        return norm.type_as(x) * self.weight


def rope_tables(
    head_dim: int, length: int, theta: float, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 cos and sin of the rotation angles, each (length, head_dim / 2)."""
    steps = torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim
    positions = torch.arange(length, dtype=torch.float32, device=device)
    angles = torch.outer(positions, 1.0 / theta**steps)  # (T, D/2)
    return angles.cos(), angles.sin()


def apply_rope(
    x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Rotate each (even, odd) pair of x (B, H, T, D) by its position's angle; returned in
    `dtype` (default: x's)."""
    x1, x2 = x.float()[..., 0::2], x.float()[..., 1::2]  # (B, H, T, D/2) each
    rotated = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)  # (B, H, T, D/2, 2)
    return rotated.flatten(-2).to(dtype or x.dtype)


def attention_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype attention runs in. On CPU, float32: PyTorch's CPU flash-attention kernel is
    slower in bf16 than in float32, backward above all (the measurement is in bench/README.md),
    and float32 is the more exact. Elsewhere (CUDA), the activations' own dtype."""
    return torch.float32 if x.device.type == "cpu" else x.dtype


class CausalSelfAttention(nn.Module):
    """Multi-head causal attention; with n_kv_head < n_head, query heads share key/value heads."""

    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        self.layer = layer  # its slot in a KVCache
        self.n_head = cfg.n_head
        self.n_kv_head = cfg.n_kv_head or cfg.n_head
        self.head_dim = cfg.n_embd // cfg.n_head
        self.q_proj = nn.Linear(cfg.n_embd, self.n_head * self.head_dim, bias=cfg.bias)
        self.kv_proj = nn.Linear(cfg.n_embd, 2 * self.n_kv_head * self.head_dim, bias=cfg.bias)
        self.out_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = cfg.dropout
        self.qk_norm, self.norm_eps = cfg.qk_norm, cfg.norm_eps

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: KVCache | None = None
    ) -> torch.Tensor:
        B, T, C = x.shape
        q = self.q_proj(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, H, T, D)
        k, v = self.kv_proj(x).view(B, T, 2, self.n_kv_head, self.head_dim).unbind(2)
        k, v = k.transpose(1, 2), v.transpose(1, 2)  # (B, K, T, D) each
        if self.qk_norm:  # each head's vectors to unit RMS: q.k is bounded by D
            q = F.rms_norm(q, (self.head_dim,), eps=self.norm_eps)
            k = F.rms_norm(k, (self.head_dim,), eps=self.norm_eps)
        work = attention_dtype(x)
        q, k, v = apply_rope(q, cos, sin, work), apply_rope(k, cos, sin, work), v.to(work)
        if cache is not None:  # prepend the cached past: k, v become (B, K, past + T, D)
            past_k, past_v = cache.keys[self.layer], cache.values[self.layer]
            if past_k is not None and past_v is not None:
                k, v = torch.cat((past_k, k), dim=2), torch.cat((past_v, v), dim=2)
            cache.keys[self.layer], cache.values[self.layer] = k, v
        if self.n_kv_head != self.n_head:
            # Each kv head serves n_head / n_kv_head query heads.
            k = k.repeat_interleave(self.n_head // self.n_kv_head, dim=1)  # (B, H, T, D)
            v = v.repeat_interleave(self.n_head // self.n_kv_head, dim=1)
        drop = self.dropout if self.training else 0.0
        # One new query attends to every cached key; a prompt (T == keys) needs the causal mask.
        causal = T == k.size(2)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=causal)  # (B,H,T,D)
        return self.out_proj(y.to(x.dtype).transpose(1, 2).reshape(B, T, C))


class SwiGLU(nn.Module):
    """Gated MLP: down(silu(gate(x)) * up(x)); by default hidden ~8/3 C (a multiple of 32, for
    fast matmuls) so parameters match a 4C GELU MLP."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        hidden = cfg.hidden_size
        self.gate_up = nn.Linear(cfg.n_embd, 2 * hidden, bias=cfg.bias)
        self.down_proj = nn.Linear(hidden, cfg.n_embd, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)  # (B, T, hidden) each
        return self.down_proj(F.silu(gate) * up)


class ReLU2(nn.Module):
    """Non-gated MLP: down(relu(up(x))²), hidden 4C by default (the speedrun's MLP: as good as
    SwiGLU per parameter there, and one matmul fewer per layer)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.up_proj = nn.Linear(cfg.n_embd, cfg.hidden_size, bias=cfg.bias)
        self.down_proj = nn.Linear(cfg.hidden_size, cfg.n_embd, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.relu(self.up_proj(x)).square())


class Block(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.n_embd, cfg.norm_eps)
        self.attn = CausalSelfAttention(cfg, layer)
        self.mlp_norm = RMSNorm(cfg.n_embd, cfg.norm_eps)
        self.mlp = ReLU2(cfg) if cfg.mlp == "relu2" else SwiGLU(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: KVCache | None = None
    ) -> torch.Tensor:
        x = x + self.drop(self.attn(self.attn_norm(x), cos, sin, cache))
        return x + self.drop(self.mlp(self.mlp_norm(x)))


def check_config(cfg: ModelConfig) -> None:
    """Raise ValueError naming the model.* setting that cannot build a GPT."""
    cfg.validate()  # again: the fields may have been set one by one
    if cfg.vocab_size <= 0:
        raise ValueError("model.vocab_size must be > 0 (0 means: set it from the tokenizer)")


class GPT(nn.Module):
    """Token embedding -> n_layer blocks -> RMSNorm -> output head (tied to the embedding
    unless `tie_embeddings` is False)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        check_config(cfg)
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, layer) for layer in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.n_embd, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight  # tied: one (V, C) matrix read and written
        self.apply(self._init_weights)
        # GPT-2's scaled init: each residual branch adds to the stream 2 * n_layer times.
        # zero_init_proj: zero instead, so each block starts as the identity and the untied head
        # predicts uniformly (the speedrun's init).
        for name, p in self.named_parameters():
            if name.endswith(("out_proj.weight", "down_proj.weight")):
                if cfg.zero_init_proj:
                    nn.init.zeros_(p)
                else:
                    nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))
        if cfg.zero_init_proj and not cfg.tie_embeddings:
            nn.init.zeros_(self.lm_head.weight)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        """Number of parameters, a tied embedding counted once."""
        return sum(p.numel() for p in self.parameters())

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache: KVCache | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, T, V) for token ids idx (B, T); mean cross-entropy over targets that are
        not -100 if targets are given. With `cache`, idx continues the cached tokens."""
        B, T = idx.shape
        start = 0 if cache is None else cache.length  # position of idx's first token
        if start + T > self.cfg.block_size:
            raise ValueError(
                f"sequence of {start + T} tokens exceeds block_size {self.cfg.block_size}"
            )
        # Rebuilt each call (T x D/2, cheap) rather than kept as a buffer: a buffer would be cast
        # to bf16 with the weights, and the angles would lose precision.
        cos, sin = rope_tables(
            self.cfg.n_embd // self.cfg.n_head, start + T, self.cfg.rope_theta, idx.device
        )
        cos, sin = cos[start:], sin[start:]
        x = self.drop(self.tok_emb(idx))  # (B, T, C)
        for block in self.blocks:
            x = block(x, cos, sin, cache)
        logits = self.lm_head(self.norm(x))  # (B, T, V)
        if self.cfg.logit_softcap:  # in float32: tanh saturates early in bf16
            cap = self.cfg.logit_softcap
            logits = (cap * torch.tanh(logits.float() / cap)).type_as(logits)
        if targets is None:
            return logits, None
        # Cross-entropy in float32: bf16 logits lose precision in the log-sum-exp.
        loss = F.cross_entropy(logits.float().reshape(B * T, -1), targets.reshape(B * T))
        return logits, loss

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
    ) -> torch.Tensor:
        """Extend idx (B, T) by max_new_tokens sampled tokens; temperature 0 means greedy.

        With the key/value cache each step feeds only the newest token; once the text outgrows
        block_size the window slides and every position changes, so it is recomputed whole."""
        cache = KVCache(self.cfg.n_layer) if use_cache else None
        for _ in range(max_new_tokens):
            if cache is not None and idx.size(1) <= self.cfg.block_size:
                logits, _ = self(idx[:, cache.length :], cache=cache)  # the prompt, then 1 token
            else:
                logits, _ = self(idx[:, -self.cfg.block_size :])  # at most block_size tokens
            next_id = sample_next(logits[:, -1, :].float(), temperature, top_k, top_p, generator)
            idx = torch.cat((idx, next_id), dim=1)
        return idx


def sample_next(
    logits: torch.Tensor,
    temperature: float,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One token id per row (B, 1) from logits (B, V): greedy at temperature 0, else a sample
    among the top_k most likely and the smallest set whose probability reaches top_p."""
    if temperature <= 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k:
        kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        sorted_probs = F.softmax(sorted_logits, dim=-1)
        # drop a token when the more likely ones alone already reach top_p (the first stays)
        drop = sorted_probs.cumsum(dim=-1) - sorted_probs >= top_p
        logits = logits.scatter(1, order, sorted_logits.masked_fill(drop, float("-inf")))
    probs = F.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)
