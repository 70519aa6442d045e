"""Low-rank adapters (LoRA) on the GPT's linear layers: train r x (in + out) numbers per layer.

A LoRA layer computes base(x) + scale * B(A(dropout(x))) with the base weight W (out, in)
frozen, A (r, in) kaiming-uniform, B (out, r) zeros (so training starts from the base model
exactly) and scale = alpha / r. `apply_lora` swaps the target layers of a GPT in place and
freezes everything else; `merge_lora` folds scale * B @ A into W and gives back a plain GPT.

Why not peft: our training checkpoints (model/resume.py), weight average (model/ema.py), guard
rollbacks and export (model/checkpoint.py) all key on this model's own parameter names, and
peft's wrapper renames every one of them (`base_model.model.blocks.0...`, the base weight as
`...q_proj.base_layer.weight`). Here a LoRA layer *is* an nn.Linear that keeps its `weight`
and `bias`, so a LoRA model's names are the plain model's plus `lora_a` / `lora_b`, a merged
model's are exactly the plain model's, and DeepSpeed wraps the model as it wraps any other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from model.gpt import GPT

# The linear layers of a block that can carry an adapter (attention, then MLP). The output
# head is left out: it is tied to the token embedding, so merging into it would change both.
LORA_TARGETS = ("q_proj", "kv_proj", "out_proj", "gate_up", "down_proj")


@dataclass
class LoraSettings:
    """What adapters a model gets (the job's `lora`, from the `finetune.lora_*` settings, whose
    docs and defaults live in tasks/config.py), checked when built."""

    rank: int
    alpha: float
    dropout: float
    targets: list[str]

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {self.rank}")
        if self.alpha <= 0:
            raise ValueError(f"LoRA alpha must be > 0, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {self.dropout}")
        unknown = sorted(set(self.targets) - set(LORA_TARGETS))
        if unknown or not self.targets:
            raise ValueError(
                f"LoRA targets {self.targets}: unknown {unknown}; choose among {list(LORA_TARGETS)}"
            )

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


class LoRALinear(nn.Linear):
    """An nn.Linear (its own frozen `weight` and `bias`) plus a trainable low-rank update."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float) -> None:
        # Built on the meta device (nothing allocated), then given the base layer's parameters.
        super().__init__(
            base.in_features, base.out_features, bias=base.bias is not None, device="meta"
        )
        self.weight = base.weight
        self.bias = base.bias
        self.weight.requires_grad_(False)
        if self.bias is not None:
            self.bias.requires_grad_(False)
        like = {"dtype": base.weight.dtype, "device": base.weight.device}
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features, **like))  # (r, in)
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, **like))  # (out, r)
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))  # as nn.Linear inits its weight
        self.scale = alpha / rank
        self.lora_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = self.lora_dropout(x) @ self.lora_a.T @ self.lora_b.T  # (..., in) -> (..., out)
        return super().forward(x) + self.scale * update

    def delta(self) -> torch.Tensor:
        """scale * B @ A, the (out, in) change the adapter makes to the weight."""
        return self.scale * (self.lora_b.float() @ self.lora_a.float())


def apply_lora(model: GPT, settings: LoraSettings) -> GPT:
    """Give the `settings.targets` layers of every block an adapter (in place) and freeze every
    other parameter; returns `model`."""
    for param in model.parameters():
        param.requires_grad_(False)
    for block in model.blocks:
        for parent in (block.attn, block.mlp):
            for name, child in list(parent.named_children()):
                if name in settings.targets and isinstance(child, nn.Linear):
                    layer = LoRALinear(child, settings.rank, settings.alpha, settings.dropout)
                    setattr(parent, name, layer)
    return model


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    """The model's LoRA layers by module name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter tensors (`<layer>.lora_a`, `<layer>.lora_b`), detached, float32, on the CPU."""
    state = {}
    for name, layer in lora_layers(model).items():
        state[f"{name}.lora_a"] = layer.lora_a.detach().float().cpu()
        state[f"{name}.lora_b"] = layer.lora_b.detach().float().cpu()
    return state


def load_adapter_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy adapter tensors (as `adapter_state_dict` names them) into a LoRA model; every
    adapter of the model must be given, and nothing else."""
    expected = set(adapter_state_dict(model))
    if set(state) != expected:
        raise ValueError(
            f"adapter tensors do not match the model's adapters: missing "
            f"{sorted(expected - set(state))[:5]}, extra {sorted(set(state) - expected)[:5]}"
        )
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in state.items():
            params[name].copy_(tensor)


@torch.no_grad()
def merge_lora(model: GPT) -> GPT:
    """A plain GPT (float32, the base model's parameter names) whose weights are the base's with
    every adapter folded in: W + scale * B @ A. `model` itself is left as it is."""
    merged = GPT(model.cfg)
    adapters = lora_layers(model)
    plain = {name: p for name, p in model.named_parameters() if ".lora_" not in name}
    for name, param in merged.named_parameters():
        value = plain[name].float()
        layer = adapters.get(name.removesuffix(".weight"))
        if layer is not None and name.endswith(".weight"):
            value = value + layer.delta()
        param.copy_(value)
    return merged


def trainable_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, all) parameter counts, the tied embedding counted once."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
