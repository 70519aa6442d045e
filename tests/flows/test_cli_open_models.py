"""`lmforge import` and `lmforge export` against a real MLflow registry (SQLite): an HF Llama
checkpoint registered with its tokenizer, exported back as HF (transformers loads it) and GGUF,
`train.init_from` resolving it; bad input exits 1 and registers nothing."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import mlflow
import torch
from mlflow import MlflowClient
from transformers import AutoModelForCausalLM

from flows.cli import main
from model.checkpoint import load_model_config
from tasks.config import load_config
from tasks.train.base import start_from_base
from tests.model.conftest import build_tiny_corpus
from tests.model.hf_fixtures import hf_checkpoint


def printed_json(out: str) -> dict:
    """The JSON object a command printed (library warnings may come before it)."""
    return json.loads(out[out.index("{\n") :])


def test_import_register_export_and_start_from(tmp_path: Path, capsys) -> None:
    tokenizer = build_tiny_corpus(tmp_path / "tokens", repeats=1) / "tokenizer.json"
    source = hf_checkpoint(tmp_path / "hf", tokenizer, 2, False)
    common = ["--set", f"run.work_dir={tmp_path / 'work'}"]
    assert main(["import", "--hf", str(source), "--name", "base", "--champion", *common]) == 0
    imported = printed_json(capsys.readouterr().out)
    assert imported["version"] == 1 and imported["aliases"] == ["candidate", "champion"]
    config = load_config(None, [f"run.work_dir={tmp_path / 'work'}"])
    client = MlflowClient(config.mlflow_uri())
    version = client.get_model_version("base", "1")
    assert version.tags["lmforge.source"] == "hf"
    run = client.get_run(version.run_id)
    assert run.data.metrics["num_params"] > 0 and run.info.status == "FINISHED"
    mlflow.set_tracking_uri(config.mlflow_uri())
    hf_config = mlflow.artifacts.download_artifacts("models:/base/1/artifacts/hf/config.json")
    assert json.loads(Path(hf_config).read_text())["tie_word_embeddings"] is False

    out = tmp_path / "exported"
    assert main(["export", "--model", "models:/base@champion", "--out", str(out), *common]) == 0
    assert printed_json(capsys.readouterr().out)["files"] == sorted(p.name for p in out.iterdir())
    theirs = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).eval()
    again = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    ids = torch.randint(0, 300, (1, 30), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(theirs(ids).logits, again(ids).logits, atol=1e-5)

    gguf_out = tmp_path / "gguf"
    args = ["export", "--model", "models:/base/1", "--format", "gguf", "--out", str(gguf_out)]
    assert main([*args, "--gguf-type", "f16", *common]) == 0
    reader = gguf.GGUFReader(str(gguf_out / "model.gguf"))
    assert reader.get_field("general.architecture").contents() == "llama"
    assert reader.get_field("tokenizer.ggml.eos_token_id").contents() == 320  # its </s>
    capsys.readouterr()

    # train.init_from: the run takes the base's shape and tokenizer (with its end-of-text)
    config = load_config(
        None, [f"run.work_dir={tmp_path / 'work'}", "train.init_from=models:/base@champion"]
    )
    base_dir = Path(start_from_base(config))
    assert config.model == load_model_config(base_dir) and config.model.tie_embeddings is False
    assert config.tokenize.tokenizer_file == str(base_dir / "tokenizer.json")
    assert json.loads((base_dir / "tokenizer_config.json").read_text())["eos_token"] == "</s>"

    # bad input: a clear message, exit 1, nothing registered or written
    raw = json.loads((source / "config.json").read_text())
    (source / "config.json").write_text(
        json.dumps({**raw, "architectures": ["MistralForCausalLM"]})
    )
    assert main(["import", "--hf", str(source), "--name", "other", *common]) == 1
    assert (
        "MistralForCausalLM model; lmforge imports only LlamaForCausalLM" in capsys.readouterr().err
    )
    assert [m.name for m in client.search_registered_models()] == ["base"]
    assert main(["export", "--model", "models:/base/1", "--out", str(out), *common]) == 1
    assert "exists and is not empty" in capsys.readouterr().err
    assert main(["export", "--model", "models:/base/7", "--out", str(tmp_path / "x"), *common]) == 1
    assert "has no version 7" in capsys.readouterr().err and not (tmp_path / "x").exists()
