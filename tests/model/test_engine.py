"""DeepSpeed config arithmetic, the learning-rate schedule and the optimizer's groups."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch

from model.config import TrainConfig
from model.engine import adamw, checkpoint_activations, deepspeed_config, lr_at
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


@pytest.mark.parametrize(
    "field, value",
    [("precision", "fp8"), ("zero_stage", 4), ("schedule", "linear"), ("offload_params", True)],
)
def test_rejects_unsupported_settings(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        deepspeed_config(TrainConfig(**{field: value}), 1)


def test_weight_average_needs_a_decay_below_one_and_zero_up_to_2() -> None:
    with pytest.raises(ValueError, match="ema_decay must be in"):
        deepspeed_config(TrainConfig(ema_decay=1.0), 1)
    with pytest.raises(ValueError, match="zero_stage <= 2"):
        deepspeed_config(TrainConfig(ema_decay=0.99, zero_stage=3), 1)
    assert deepspeed_config(TrainConfig(ema_decay=0.99, zero_stage=2), 1)


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


def test_warmup_stable_decay() -> None:
    train = TrainConfig(steps=100, warmup_steps=10, lr=1e-3, min_lr=1e-4, schedule="wsd")
    assert lr_at(0, train) == pytest.approx(1e-4)
    assert lr_at(10, train) == lr_at(80, train) == pytest.approx(1e-3)  # stable phase
    assert lr_at(90, train) == pytest.approx(5.5e-4)  # the last 20% decay linearly
    assert lr_at(100, train) == pytest.approx(1e-4)


def test_fp16_offload_and_consistent_batch() -> None:
    train = TrainConfig(
        precision="fp16", zero_stage=3, offload_optimizer=True, offload_params=True, grad_accum=2
    )
    config = deepspeed_config(train, world_size=3)
    assert config["fp16"]["enabled"] and config["fp16"]["loss_scale"] == 0  # dynamic scaling
    assert not config["bf16"]["enabled"]
    assert config["zero_optimization"]["offload_optimizer"] == {"device": "cpu"}
    assert config["zero_optimization"]["offload_param"] == {"device": "cpu"}
    assert config["train_batch_size"] == train.micro_batch * 2 * 3
    with pytest.raises(ValueError, match="offload_optimizer needs"):
        deepspeed_config(TrainConfig(zero_stage=0, offload_optimizer=True), 1)


def test_activation_checkpointing_keeps_names_and_gradients() -> None:
    cfg = ModelConfig(n_layer=2, n_head=2, n_embd=16, block_size=8, vocab_size=30)
    x = torch.randint(0, 30, (2, 8))
    grads = []
    for recompute in (False, True):
        torch.manual_seed(0)
        model = GPT(cfg)
        if recompute:
            checkpoint_activations(model)
        model(x, x)[1].backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    assert all(torch.allclose(grads[0][n], grads[1][n]) for n in grads[0])
