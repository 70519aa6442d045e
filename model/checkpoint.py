"""The exported model: `model.safetensors` + `config.json` (ModelConfig) + `tokenizer.json`.

No pickle anywhere: weights are safetensors, the config is JSON, so a model folder can be loaded
without trusting whoever wrote it. The tied embedding / output matrix is stored once.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from safetensors.torch import load_model as load_safetensors_into
from safetensors.torch import save_model as save_safetensors_from

from model.gpt import GPT, ModelConfig

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
TOKENIZER = "tokenizer.json"


def export_model(
    model: GPT, model_cfg: ModelConfig, out_dir: Path, tokenizer_path: Path | None
) -> Path:
    """Write the model folder `out_dir` (weights in the model's dtype) and return it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # save_model (not save_file) drops the duplicate name of the tied weight and keeps one copy.
    save_safetensors_from(model, str(out_dir / WEIGHTS))
    (out_dir / CONFIG).write_text(json.dumps(dataclasses.asdict(model_cfg), indent=2) + "\n")
    if tokenizer_path is not None:
        shutil.copyfile(tokenizer_path, out_dir / TOKENIZER)
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
