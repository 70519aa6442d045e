"""LoRA vs full fine-tuning of the same registered base on the same domain set at equal steps,
through the real `deepspeed` launcher and a real MLflow registry: held-out perplexity, peak
memory and checkpoint size for both; the LoRA version keeps its adapter. Bad LoRA settings
are refused before anything runs or is registered."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from tasks.config import ConfigError
from tasks.finetune.finetune import finetune
from tests.tasks.finetune.test_finetune import FAST, QA, STEPS, registered_base, write_jsonl
from tests.tasks.register.conftest import embedded_config

# every block layer: the tiny base has one 32-wide block, so rank 8 is already a quarter of it
LORA = ["finetune.method=lora", 'finetune.lora_targets=["q_proj","kv_proj","gate_up"]']


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path):
    """An embedded registry whose `tiny` model has one version, the champion."""
    work_dir = tmp_path_factory.mktemp("finetune-lora")
    with registered_base(work_dir, tiny_model):
        yield work_dir


def test_lora_and_full_finetuning_at_equal_steps(registry: Path) -> None:
    work_dir = registry
    data = str(write_jsonl(work_dir / "shop.jsonl", QA, repeat=2))
    results = {}
    for method, extra in (("full", []), ("lora", LORA)):
        config = embedded_config(work_dir, *STEPS, *FAST, f"finetune.domain={method}", *extra)
        results[method] = finetune(config, "models:/tiny@champion", data)
    report = {
        method: {
            "sft_perplexity_before": r["before"]["sft_perplexity"],
            "sft_perplexity_after": r["after"]["sft_perplexity"],
            "steps": r["train_summary"]["steps"],
            "trainable_params": r["train_summary"]["trainable_params"],
            "trainable_fraction": r["train_summary"]["trainable_fraction"],
            "peak_memory_mb": r["train_summary"]["peak_memory_mb"],
            "checkpoint_mb": r["train_summary"]["checkpoint_mb"],
        }
        for method, r in results.items()
    }
    (work_dir / "lora_vs_full.json").write_text(json.dumps(report, indent=2))
    print("\nLoRA vs full fine-tuning, equal steps:\n" + json.dumps(report, indent=2))
    full, lora = report["full"], report["lora"]
    assert full["steps"] == lora["steps"] == 20
    for numbers in (full, lora):  # both learn the domain
        assert numbers["sft_perplexity_after"] < numbers["sft_perplexity_before"]
        assert numbers["peak_memory_mb"][0] > 0
    assert full["trainable_fraction"] == 1.0 and lora["trainable_fraction"] < 0.3
    # DeepSpeed's files (the JSON beside them holds RNG states, ~35 kB either way): LoRA's
    # hold the adapters and their Adam moments only
    full_pt, lora_pt = (deepspeed_bytes(Path(results[m]["path"])) for m in ("full", "lora"))
    print(f"DeepSpeed checkpoint files: full {full_pt} bytes, LoRA {lora_pt} bytes")
    assert lora_pt < full_pt / 4
    assert lora["checkpoint_mb"] < full["checkpoint_mb"]
    assert "| method | lora |" in Path(results["lora"]["path"], "before_after.md").read_text()

    # the LoRA version: merged weights as its model, the adapter kept as its own artifact
    client = MlflowClient(tracking_uri=embedded_config(work_dir).mlflow_uri())
    mlflow.set_tracking_uri(embedded_config(work_dir).mlflow_uri())
    for method in ("full", "lora"):
        registered = results[method]["registered"]
        version = client.get_model_version(registered["name"], str(registered["version"]))
        assert version.tags["lmforge.finetune.method"] == method
        folder = Path(mlflow.artifacts.download_artifacts(registered["model_uri"]))
        adapter = folder / "artifacts" / "adapter"
        assert (folder / "artifacts" / "model" / "model.safetensors").is_file()
        assert adapter.is_dir() == (method == "lora")
    settings = json.loads((adapter / "adapter_config.json").read_text())
    assert settings["rank"] == 8 and settings["targets"] == ["q_proj", "kv_proj", "gate_up"]
    assert (adapter / "adapter_model.safetensors").is_file()


def deepspeed_bytes(out: Path) -> int:
    """The size of the DeepSpeed files of a run's last checkpoint."""
    (last,) = sorted((out / "checkpoints").glob("step*"))[-1:]
    return sum(f.stat().st_size for f in last.glob("*.pt"))


def test_bad_lora_settings_register_nothing(registry: Path, tmp_path: Path) -> None:
    work_dir = registry
    with pytest.raises(ConfigError, match=r"finetune.lora_rank = 0: lora_rank must be >= 1"):
        embedded_config(work_dir, *LORA, "finetune.lora_rank=0")
    with pytest.raises(ConfigError, match=r"lora_targets = \['wq'\]: .*q_proj, kv_proj"):
        embedded_config(work_dir, *LORA, 'finetune.lora_targets=["wq"]')
    # ZeRO 3 passes the config (its own section is fine) and is refused before any training
    config = embedded_config(work_dir, *STEPS, *FAST, *LORA, "finetune.domain=bad")
    config.train.zero_stage = 3
    data = str(write_jsonl(tmp_path / "shop.jsonl", QA, repeat=2))
    outputs = sorted((work_dir / "finetune").glob("*"))
    with pytest.raises(ValueError, match=r"train.zero_stage = 3 is not supported"):
        finetune(config, "models:/tiny@champion", data)
    client = MlflowClient(config.mlflow_uri())
    assert "tiny-bad" not in {m.name for m in client.search_registered_models()}
    experiments = [e.experiment_id for e in client.search_experiments()]
    opened = client.search_runs(experiments, "tags.mlflow.runName = 'finetune-bad'")
    assert not opened  # refused before the run was opened
    assert sorted((work_dir / "finetune").glob("*")) == outputs  # and nothing half-written
