"""The weight average: its arithmetic, swapping it in for evaluation, and its checkpoint file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.ema import EMA_FILE, WeightAverage
from model.gpt import GPT, ModelConfig


def test_average_follows_the_warmed_up_decay() -> None:
    layer = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(0.0)
    average = WeightAverage(layer, decay=0.2)
    expected = 0.0
    for n, value in enumerate([1.0, 2.0, 4.0], start=1):
        with torch.no_grad():
            layer.weight.fill_(value)
        average.update()
        d = min(0.2, (1 + n) / (10 + n))  # 2/11, then capped: 0.2, 0.2
        expected = d * expected + (1 - d) * value
    assert average.updates == 3
    assert expected == pytest.approx(0.2 * (0.2 * (9 / 11) + 0.8 * 2.0) + 0.8 * 4.0)
    assert average.average["weight"] == pytest.approx(torch.full((1, 2), expected))


def test_swapped_in_for_a_block_then_the_weights_come_back(tmp_path: Path) -> None:
    model = GPT(ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=32))
    average = WeightAverage(model, decay=0.9)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    average.update()
    trained = {n: p.detach().clone() for n, p in model.named_parameters()}
    with average.swapped_in():
        for name, param in model.named_parameters():
            assert torch.equal(param, average.average[name])
            assert not torch.equal(param, trained[name]) and not torch.equal(param, before[name])
    for name, param in model.named_parameters():
        assert torch.equal(param, trained[name])
    # the checkpoint file restores the average and its update count exactly; tied weights once
    average.save(tmp_path)
    restored = WeightAverage(model, decay=0.9)
    restored.load(tmp_path)
    with pytest.warns(UserWarning, match="ema_decay=0.9; continuing with 0.5"):
        WeightAverage(model, decay=0.5).load(tmp_path)
    assert restored.updates == 1
    assert all(torch.equal(restored.average[n], average.average[n]) for n in average.average)
    assert "tok_emb.weight" in average.average and "lm_head.weight" not in average.average


def test_load_explains_a_checkpoint_without_an_average(tmp_path: Path) -> None:
    average = WeightAverage(torch.nn.Linear(2, 1), decay=0.9)
    with pytest.raises(FileNotFoundError, match=f"{EMA_FILE} is missing.*ema_decay"):
        average.load(tmp_path)
