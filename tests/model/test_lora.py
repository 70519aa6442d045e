"""LoRA (model/lora.py) without the launcher: the trainable share on the demo shape, merged
weights that compute what base + adapter compute, and the settings' checks at config load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.gpt import GPT, ModelConfig
from model.lora import (
    LORA_TARGETS,
    LoraSettings,
    adapter_state_dict,
    apply_lora,
    load_adapter_state,
    lora_layers,
    merge_lora,
    trainable_parameters,
)
from tasks.config import ConfigError, FinetuneConfig, load_config

DEMO = Path(__file__).resolve().parents[2] / "configs" / "demo.toml"


def default_settings() -> LoraSettings:
    ft = FinetuneConfig()
    return LoraSettings(ft.lora_rank, ft.lora_alpha, ft.lora_dropout, ft.lora_targets)


def test_default_adapters_train_under_two_percent_of_the_demo_shape() -> None:
    config = load_config(DEMO)
    assert config.tokenize.vocab_size == 4096  # the demo's model takes its vocabulary from it
    shape = ModelConfig(**{**vars(config.model), "vocab_size": config.tokenize.vocab_size})
    model = apply_lora(GPT(shape), default_settings())
    trainable, total = trainable_parameters(model)
    print(f"demo shape: {trainable} of {total} parameters train ({trainable / total:.2%})")
    assert 0 < trainable / total < 0.02
    # rank 8 on q_proj (128 -> 128) and kv_proj (128 -> 256) of 4 blocks
    assert trainable == 4 * 8 * ((128 + 128) + (128 + 256))
    assert all(not p.requires_grad for n, p in model.named_parameters() if ".lora_" not in n)


def test_every_target_is_a_linear_layer_of_each_block() -> None:
    model = GPT(ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=64))
    apply_lora(model, LoraSettings(2, 4.0, 0.0, list(LORA_TARGETS)))
    names = {name.split(".", 2)[2] for name in lora_layers(model)}
    assert names == {f"attn.{t}" for t in LORA_TARGETS[:3]} | {f"mlp.{t}" for t in LORA_TARGETS[3:]}
    assert len(lora_layers(model)) == 2 * len(LORA_TARGETS)


def test_merged_model_computes_base_plus_adapter_with_the_plain_names() -> None:
    torch.manual_seed(0)
    shape = ModelConfig(n_layer=2, n_head=4, n_kv_head=2, n_embd=32, block_size=16, vocab_size=64)
    base = GPT(shape).eval()
    plain_names = [name for name, _ in base.named_parameters()]
    lora = apply_lora(GPT(shape), LoraSettings(4, 8.0, 0.1, list(LORA_TARGETS)))
    lora.load_state_dict(base.state_dict(), strict=False)  # the same base weights
    tokens = torch.randint(0, 64, (3, 16))
    with torch.no_grad():
        assert torch.equal(lora.eval()(tokens)[0], base(tokens)[0])  # B = 0: the base exactly
        for layer in lora_layers(lora).values():
            layer.lora_b.normal_(std=0.2)  # a real update
        adapted = lora(tokens)[0]
        merged = merge_lora(lora).eval()
        logits = merged(tokens)[0]
    assert not torch.allclose(adapted, base(tokens)[0], atol=1e-3)
    torch.testing.assert_close(logits, adapted, rtol=1e-5, atol=1e-5)
    assert type(merged) is GPT and [name for name, _ in merged.named_parameters()] == plain_names

    copy = apply_lora(GPT(shape), LoraSettings(4, 8.0, 0.1, list(LORA_TARGETS)))
    copy.load_state_dict(base.state_dict(), strict=False)
    load_adapter_state(copy, adapter_state_dict(lora))
    with torch.no_grad():
        torch.testing.assert_close(copy.eval()(tokens)[0], adapted, rtol=0, atol=0)
    with pytest.raises(ValueError, match="missing"):
        load_adapter_state(copy, {})


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("finetune.lora_rank=0", r"finetune.lora_rank = 0: lora_rank must be >= 1"),
        ("finetune.lora_rank=-4", r"finetune.lora_rank = -4: lora_rank must be >= 1"),
        ("finetune.lora_alpha=0", r"finetune.lora_alpha = 0.0: lora_alpha must be > 0"),
        ("finetune.lora_dropout=1.0", r"finetune.lora_dropout = 1.0: .* in \[0, 1\)"),
        (
            'finetune.lora_targets=["q_proj", "attn"]',
            r"finetune.lora_targets = \['q_proj', 'attn'\]: .*each one of q_proj, kv_proj, "
            r"out_proj, gate_up, down_proj \(unknown: attn\)",
        ),
        ("finetune.lora_targets=[]", r"finetune.lora_targets = \[\]: .*at least one layer"),
        ('finetune.method="qlora"', r"finetune.method = 'qlora': must be one of 'full', 'lora'"),
    ],
)
def test_bad_lora_settings_are_refused_at_config_load(setting: str, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"--set: {message}"):
        load_config(None, ["finetune.method=lora", setting])


def test_the_jobs_lora_settings_check_themselves() -> None:
    """job.json is read by the ranks without the config tree: LoraSettings checks again."""
    with pytest.raises(ValueError, match=r"LoRA rank must be >= 1, got 0"):
        LoraSettings(0, 16.0, 0.0, ["q_proj"])
    with pytest.raises(ValueError, match=r"unknown \['lm_head'\]; choose among"):
        LoraSettings(8, 16.0, 0.0, ["lm_head"])
