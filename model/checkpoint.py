"""The exported model: `model.safetensors` + `config.json` (ModelConfig) + `tokenizer.json` (+ an
imported model's `tokenizer_config.json`, model/hf.py).

No pickle anywhere: weights are safetensors, the config is JSON, so a model folder can be loaded
without trusting whoever wrote it. The tied embedding / output matrix is stored once. A LoRA
run's adapter is its own folder beside the model: `adapter_model.safetensors` (the
`<layer>.lora_a` / `.lora_b` tensors, float32) and `adapter_config.json` (rank, alpha, dropout,
targets, base).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model as load_safetensors_into
from safetensors.torch import save_file
from safetensors.torch import save_model as save_safetensors_from

from model.gpt import GPT, ModelConfig
from model.lora import LoraSettings
from model.tokenizer import TOKENIZER_CONFIG

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
TOKENIZER = "tokenizer.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


def model_with_weights(cfg: ModelConfig, weights: Mapping[str, torch.Tensor]) -> GPT:
    """A new GPT holding `weights` (parameter name -> tensor, as `named_parameters` lists
    them: the tied head is the embedding's and comes with it)."""
    model = GPT(cfg)
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.copy_(weights[name])
    return model


def export_model(
    model: GPT, model_cfg: ModelConfig, out_dir: Path, tokenizer_path: Path | None
) -> Path:
    """Write the model folder `out_dir` (weights in the model's dtype) and return it; the files
    go to a temporary folder renamed into place, so a reader never sees half an export."""
    out_dir = Path(out_dir)
    temp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    # save_model (not save_file) drops the duplicate name of the tied weight and keeps one copy.
    save_safetensors_from(model, str(temp / WEIGHTS))
    (temp / CONFIG).write_text(json.dumps(dataclasses.asdict(model_cfg), indent=2) + "\n")
    if tokenizer_path is not None:
        shutil.copyfile(tokenizer_path, temp / TOKENIZER)
        side = Path(tokenizer_path).with_name(TOKENIZER_CONFIG)  # an imported model's settings
        if side.is_file():
            shutil.copyfile(side, temp / TOKENIZER_CONFIG)
    shutil.rmtree(out_dir, ignore_errors=True)
    temp.rename(out_dir)
    return out_dir


def export_adapter(
    adapters: Mapping[str, torch.Tensor], settings: LoraSettings, base: str, out_dir: Path
) -> Path:
    """Write the adapter folder `out_dir` (tensors as model.lora.adapter_state_dict names them,
    `base` the model they adapt) through a temporary folder renamed into place."""
    out_dir = Path(out_dir)
    temp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    tensors = {name: t.detach().float().cpu().contiguous() for name, t in adapters.items()}
    save_file(tensors, str(temp / ADAPTER_WEIGHTS))
    config: dict[str, Any] = {**dataclasses.asdict(settings), "base": base}
    (temp / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    shutil.rmtree(out_dir, ignore_errors=True)
    temp.rename(out_dir)
    return out_dir


def load_model_config(model_dir: Path) -> ModelConfig:
    """The ModelConfig saved in a model folder."""
    path = Path(model_dir) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {model_dir} is not an exported model folder")
    values = json.loads(path.read_text())
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{path}: unknown ModelConfig keys {unknown}; written by newer code?")
    return ModelConfig(**values)


def load_model(model_dir: Path) -> tuple[GPT, ModelConfig]:
    """Rebuild the GPT from a model folder, in eval mode on the CPU."""
    model_dir = Path(model_dir)
    cfg = load_model_config(model_dir)
    model = GPT(cfg)
    weights = model_dir / WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} is missing: re-run the train step that exported it")
    # strict: every learned tensor must be present; the tied head is restored from the embedding.
    load_safetensors_into(model, str(weights), strict=True)
    return model.eval(), cfg


def load_weights(model: GPT, model_dir: Path) -> None:
    """Load an exported model folder's weights into `model`; the folder's config must match."""
    saved = load_model_config(model_dir)
    diff = {
        f.name: (getattr(saved, f.name), getattr(model.cfg, f.name))
        for f in dataclasses.fields(ModelConfig)
        if getattr(saved, f.name) != getattr(model.cfg, f.name) and f.name != "dropout"
    }
    if diff:  # dropout may differ: it shapes no weight
        raise ValueError(
            f"init_from={model_dir} holds a model whose config differs from the job's model "
            f"config (setting: (saved, job)) {diff}: use the saved model's config"
        )
    weights = Path(model_dir) / WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} is missing: re-run the train step that exported it")
    load_safetensors_into(model, str(weights), strict=True)
