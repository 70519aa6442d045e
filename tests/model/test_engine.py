"""DeepSpeed config arithmetic, the learning-rate schedule and the optimizer's groups."""

from __future__ import annotations

from itertools import pairwise

import pytest

from model.config import TrainConfig
from model.engine import adamw, deepspeed_config, lr_at
from model.gpt import GPT, ModelConfig


def test_batch_arithmetic_and_settings() -> None:
    train = TrainConfig(micro_batch=8, grad_accum=3, zero_stage=1, precision="bf16", grad_clip=0.5)
    config = deepspeed_config(train, world_size=4)
    assert config["train_batch_size"] == 8 * 3 * 4
    assert config["train_micro_batch_size_per_gpu"] == 8
    assert config["gradient_accumulation_steps"] == 3
    assert config["zero_optimization"] == {"stage": 1}
    assert config["bf16"] == {"enabled": True}
    assert config["gradient_clipping"] == 0.5
    assert config["steps_per_print"] > 10**6
    assert deepspeed_config(TrainConfig(precision="fp32"), 1)["bf16"] == {"enabled": False}


@pytest.mark.parametrize("field, value", [("precision", "fp16"), ("zero_stage", 4)])
def test_rejects_unsupported_settings(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        deepspeed_config(TrainConfig(**{field: value}), 1)


def test_warmup_then_cosine_to_min_lr() -> None:
    train = TrainConfig(steps=100, warmup_steps=10, lr=1e-3, min_lr=1e-4)
    assert lr_at(0, train) == pytest.approx(1e-4)
    assert lr_at(9, train) == pytest.approx(1e-3)
    assert lr_at(10, train) == pytest.approx(1e-3)
    assert lr_at(55, train) == pytest.approx(5.5e-4)
    assert lr_at(100, train) == pytest.approx(1e-4)
    assert lr_at(500, train) == pytest.approx(1e-4)
    lrs = [lr_at(s, train) for s in range(10, 101)]
    assert all(a >= b for a, b in pairwise(lrs))


def test_weight_decay_only_on_matrices() -> None:
    model = GPT(ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=30))
    decayed, plain = adamw(model, TrainConfig(weight_decay=0.1)).param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decayed["params"])
    assert all(p.dim() == 1 for p in plain["params"]) and plain["params"]
    total = sum(p.numel() for g in (decayed, plain) for p in g["params"])
    assert total == model.num_params()  # the tied matrix is in exactly once
