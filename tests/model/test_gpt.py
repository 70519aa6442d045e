"""The GPT in plain torch: shapes, parameter count, learning, generation."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from model.flops import flops_per_token, param_count
from model.gpt import GPT, PRESETS, ModelConfig, sample_next

TINY = ModelConfig(n_layer=2, n_head=4, n_embd=32, block_size=16, vocab_size=50)


def test_forward_shapes_and_initial_loss() -> None:
    torch.manual_seed(0)
    model = GPT(TINY)
    idx = torch.randint(0, TINY.vocab_size, (3, TINY.block_size))
    logits, loss = model(idx)
    assert logits.shape == (3, TINY.block_size, TINY.vocab_size) and loss is None
    _, loss = model(idx, torch.roll(idx, -1, dims=1))
    # small init: close to the uniform guess, log(vocab)
    assert abs(loss.item() - torch.log(torch.tensor(50.0)).item()) < 0.5


def test_num_params_counts_the_tied_embedding_once() -> None:
    c, v, layers, hidden = TINY.n_embd, TINY.vocab_size, TINY.n_layer, 96  # 32*ceil(8*32/3/32)
    per_layer = 2 * c + 4 * c * c + 3 * c * hidden  # norms, q/kv/out, gate_up + down
    assert GPT(TINY).num_params() == v * c + layers * per_layer + c
    model = GPT(TINY)
    assert model.lm_head.weight is model.tok_emb.weight


def test_grouped_query_attention_has_fewer_kv_weights() -> None:
    gqa = ModelConfig(n_layer=1, n_head=4, n_kv_head=2, n_embd=32, block_size=8, vocab_size=20)
    model = GPT(gqa)
    assert model.blocks[0].attn.kv_proj.weight.shape == (2 * 2 * 8, 32)
    logits, _ = model(torch.randint(0, 20, (2, 8)))
    assert logits.shape == (2, 8, 20)


def test_causal_prefix_does_not_see_the_future() -> None:
    model = GPT(TINY).eval()
    idx = torch.randint(0, TINY.vocab_size, (1, 10))
    changed = idx.clone()
    changed[0, -1] = (idx[0, -1] + 1) % TINY.vocab_size
    a, _ = model(idx)
    b, _ = model(changed)
    torch.testing.assert_close(a[:, :-1], b[:, :-1])


def test_overfits_one_batch() -> None:
    torch.manual_seed(0)
    model = GPT(TINY)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    data = torch.randint(0, TINY.vocab_size, (4, TINY.block_size + 1))
    x, y = data[:, :-1], data[:, 1:]
    losses = []
    for _ in range(30):
        _, loss = model(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_generate_length_and_seeded_determinism() -> None:
    torch.manual_seed(0)
    model = GPT(TINY).eval()
    prompt = torch.tensor([[1, 2, 3]])
    runs = [
        model.generate(
            prompt, 20, temperature=1.0, top_k=5, generator=torch.Generator().manual_seed(7)
        )
        for _ in range(2)
    ]
    assert runs[0].shape == (1, 23)  # longer than block_size: the context is cropped
    assert torch.equal(runs[0], runs[1]) and torch.equal(runs[0][:, :3], prompt)
    greedy = model.generate(prompt, 5, temperature=0.0)
    assert torch.equal(greedy, model.generate(prompt, 5, temperature=0.0))


def test_sample_ids_passes_top_p_through() -> None:
    """A tiny top-p keeps only the likeliest token: sampling becomes greedy decoding."""
    from model.generate import sample_ids

    torch.manual_seed(0)
    model = GPT(TINY).eval()
    greedy = sample_ids(model, [1, 2, 3], 8, temperature=0.0, top_k=None, seed=0)
    for seed in range(3):
        assert sample_ids(model, [1, 2, 3], 8, 1.0, None, seed, top_p=1e-6) == greedy
    assert any(sample_ids(model, [1, 2, 3], 8, 1.0, None, seed) != greedy for seed in range(3))
    for top_p in (-0.5, 1.5):
        with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\]"):
            sample_ids(model, [1, 2, 3], 8, 1.0, None, 0, top_p=top_p)
    with pytest.raises(ValueError, match="top_k must be >= 0"):
        sample_ids(model, [1, 2, 3], 8, 1.0, -1, 0)


@pytest.mark.parametrize(
    "bad, setting",
    [
        (dict(vocab_size=0), "vocab_size"),
        (dict(n_embd=30, n_head=4), "n_embd"),
        (dict(n_embd=24, n_head=8), "even head size"),
        (dict(n_head=4, n_kv_head=3), "n_kv_head"),
    ],
)
def test_rejects_unbuildable_configs(bad: dict, setting: str) -> None:
    with pytest.raises(ValueError, match=setting):
        GPT(ModelConfig(**{"vocab_size": 10, **bad}))


def test_rejects_overlong_input() -> None:
    with pytest.raises(ValueError, match="block_size"):
        GPT(TINY)(torch.zeros(1, TINY.block_size + 1, dtype=torch.long))


def test_cached_and_uncached_greedy_generation_agree() -> None:
    torch.manual_seed(0)
    model = GPT(dataclasses.replace(TINY, n_kv_head=1)).eval()
    prompt = torch.randint(0, TINY.vocab_size, (2, 5))
    steps = TINY.block_size + 4  # past block_size the window slides: recomputed, still equal
    cached = model.generate(prompt, steps, temperature=0.0)
    assert torch.equal(cached, model.generate(prompt, steps, temperature=0.0, use_cache=False))
    sampled = [
        model.generate(
            prompt, 8, top_p=0.9, use_cache=c, generator=torch.Generator().manual_seed(1)
        )
        for c in (True, False)
    ]
    assert torch.equal(sampled[0], sampled[1])


def test_top_p_keeps_the_smallest_likely_set() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    gen = torch.Generator().manual_seed(0)
    draws = {sample_next(logits, 1.0, top_p=0.75, generator=gen).item() for _ in range(200)}
    assert draws == {0, 1}  # 0.5 alone < 0.75; 0.5 + 0.3 reaches it
    assert {sample_next(logits, 1.0, top_p=0.5, generator=gen).item() for _ in range(50)} == {0}
    assert sample_next(logits, 0.0).item() == 0


def test_presets_and_analytic_counts() -> None:
    for name in ("debug", "small"):
        cfg = dataclasses.replace(PRESETS[name], vocab_size=512, n_kv_head=2, bias=True)
        assert param_count(cfg) == GPT(cfg).num_params(), name
    gpt2 = dataclasses.replace(PRESETS["gpt2-124m"], vocab_size=50304)
    assert 120e6 < param_count(gpt2) < 128e6
    big = dataclasses.replace(PRESETS["350m"], vocab_size=50304)
    assert 330e6 < param_count(big) < 370e6
    # 6N + 12 L H Q T
    assert flops_per_token(gpt2) == 6 * param_count(gpt2) + 12 * 12 * 12 * 64 * 1024
