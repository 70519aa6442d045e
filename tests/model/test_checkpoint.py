"""Export and load of a model folder: safetensors + config.json + tokenizer.json."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from model.checkpoint import export_model, load_model, load_weights, model_with_weights
from model.gpt import GPT, ModelConfig

CFG = ModelConfig(n_layer=2, n_head=2, n_kv_head=1, n_embd=16, block_size=8, vocab_size=40)


def test_round_trip_gives_identical_logits(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = GPT(CFG).eval()
    tokenizer = tmp_path / "tok.json"
    tokenizer.write_text("{}")
    folder = export_model(model, CFG, tmp_path / "model", tokenizer)
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    ]
    loaded, cfg = load_model(folder)
    assert cfg == CFG and not loaded.training
    idx = torch.randint(0, CFG.vocab_size, (2, CFG.block_size))
    assert torch.equal(model(idx)[0], loaded(idx)[0])
    assert loaded.lm_head.weight is loaded.tok_emb.weight


def test_model_with_weights_takes_each_named_parameter_once() -> None:
    torch.manual_seed(0)
    model = GPT(CFG).eval()
    weights = {name: p.detach().clone() for name, p in model.named_parameters()}
    assert "lm_head.weight" not in weights  # tied: listed once, as the embedding
    rebuilt = model_with_weights(CFG, weights).eval()
    idx = torch.randint(0, CFG.vocab_size, (2, CFG.block_size))
    assert torch.equal(model(idx)[0], rebuilt(idx)[0])
    assert rebuilt.lm_head.weight is rebuilt.tok_emb.weight


def test_tied_matrix_is_stored_once(tmp_path: Path) -> None:
    export_model(GPT(CFG), CFG, tmp_path, None)
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as weights:
        names = list(weights.keys())
    assert ("tok_emb.weight" in names) != ("lm_head.weight" in names)


def test_load_explains_a_bad_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"n_layer": 1, "n_mystery": 3}))
    with pytest.raises(ValueError, match="n_mystery"):
        load_model(tmp_path)


def test_load_weights_refuses_another_shape(tmp_path: Path) -> None:
    cfg = ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=50)
    export_model(GPT(cfg), cfg, tmp_path / "m", None)
    target = GPT(dataclasses.replace(cfg, dropout=0.1))  # dropout shapes no weight: accepted
    load_weights(target, tmp_path / "m")
    assert torch.equal(target.tok_emb.weight, load_model(tmp_path / "m")[0].tok_emb.weight)
    with pytest.raises(ValueError, match=r"n_embd': \(16, 32\)"):
        load_weights(GPT(dataclasses.replace(cfg, n_embd=32)), tmp_path / "m")
