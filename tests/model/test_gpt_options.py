"""The speedrun options of ModelConfig (qk_norm, mlp = "relu2", logit_softcap, zero_init_proj):
each builds, trains (forward and backward) and does what it says."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from model.flops import param_count
from model.gpt import GPT, ModelConfig, rope_tables

TINY = ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=64)
ALL = dict(qk_norm=True, mlp="relu2", logit_softcap=30.0, zero_init_proj=True)


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(
        0, TINY.vocab_size, (2, TINY.block_size + 1), generator=torch.Generator().manual_seed(seed)
    )
    return ids[:, :-1], ids[:, 1:]


@pytest.mark.parametrize("option", [{}, *({k: v} for k, v in ALL.items()), ALL])
def test_each_option_trains_forward_and_backward(option: dict) -> None:
    torch.manual_seed(0)
    cfg = dataclasses.replace(TINY, **option)
    model = GPT(cfg)
    assert param_count(cfg) == model.num_params()
    x, y = batch()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = None
    for _ in range(15):  # over-fits one batch
        logits, loss = model(x, y)
        assert logits.shape == (2, TINY.block_size, TINY.vocab_size)
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        assert all(p.grad is not None and p.grad.isfinite().all() for p in model.parameters())
        optimizer.step()
    assert loss.item() < first - 0.5, option


def test_relu2_mlp_is_down_of_squared_relu_of_up() -> None:
    model = GPT(dataclasses.replace(TINY, mlp="relu2"))
    mlp = model.blocks[0].mlp
    assert mlp.up_proj.weight.shape == (4 * 32, 32) and mlp.down_proj.weight.shape == (32, 128)
    assert not hasattr(mlp, "gate_up")
    x = torch.randn(3, 32)
    want = F.linear(F.relu(F.linear(x, mlp.up_proj.weight)) ** 2, mlp.down_proj.weight)
    assert torch.allclose(mlp(x), want)
    # the default SwiGLU and ReLU² hidden widths give (about) the same parameters per block
    swiglu = GPT(TINY).blocks[0].mlp
    assert (
        abs(
            sum(p.numel() for p in mlp.parameters()) / sum(p.numel() for p in swiglu.parameters())
            - 1
        )
        < 0.15
    )


def test_logit_softcap_bounds_the_logits_and_is_tanh() -> None:
    torch.manual_seed(0)
    plain = GPT(TINY)
    with torch.no_grad():
        plain.tok_emb.weight.mul_(20.0)  # large logits
    capped = GPT(dataclasses.replace(TINY, logit_softcap=5.0))
    capped.load_state_dict(plain.state_dict())
    x, _ = batch()
    raw, soft = plain(x)[0], capped(x)[0]
    assert raw.abs().max() > 10.0 and soft.abs().max() <= 5.0
    assert torch.allclose(soft, 5.0 * torch.tanh(raw / 5.0), atol=1e-5)


def test_qk_norm_makes_attention_blind_to_the_scale_of_q_and_k() -> None:
    torch.manual_seed(0)
    model = GPT(dataclasses.replace(TINY, qk_norm=True))
    x, _ = batch()
    before = model(x)[0]
    with torch.no_grad():  # q and k rows scaled per head: RMS-normalised away
        for block in model.blocks:
            block.attn.q_proj.weight.mul_(7.0)
            block.attn.kv_proj.weight[:32].mul_(3.0)  # the k half
    assert torch.allclose(model(x)[0], before, atol=1e-4)
    plain = GPT(TINY)  # without qk_norm the same scaling changes the output
    ref = plain(x)[0]
    with torch.no_grad():
        plain.blocks[0].attn.q_proj.weight.mul_(7.0)
    assert not torch.allclose(plain(x)[0], ref, atol=1e-4)


def test_zero_init_proj_starts_each_block_as_the_identity() -> None:
    for tied in (True, False):
        model = GPT(dataclasses.replace(TINY, zero_init_proj=True, tie_embeddings=tied))
        zeroed = [n for n, p in model.named_parameters() if not p.any()]
        assert sorted(zeroed) == sorted(
            [
                f"blocks.{i}.{m}"
                for i in range(2)
                for m in ("attn.out_proj.weight", "mlp.down_proj.weight")
            ]
            + ([] if tied else ["lm_head.weight"])
        )
        x, _ = batch()
        block = model.blocks[0]
        h = torch.randn(2, TINY.block_size, 32)
        cos_sin = rope_tables(16, TINY.block_size, TINY.rope_theta)
        assert torch.equal(block(h, *cos_sin), h)  # both branches add exactly zero
        logits = model(x)[0]
        if not tied:  # the zero head predicts uniformly: loss ln V
            assert torch.equal(logits, torch.zeros_like(logits))
    assert GPT(TINY).blocks[0].attn.out_proj.weight.any()  # off by default


@pytest.mark.parametrize(
    "bad, setting",
    [
        (dict(mlp="gelu"), "mlp must be one of"),
        (dict(logit_softcap=-1.0), "logit_softcap must be >= 0"),
    ],
)
def test_bad_option_values_are_refused(bad: dict, setting: str) -> None:
    with pytest.raises(ValueError, match=setting):
        ModelConfig(**{"vocab_size": 10, **bad})
