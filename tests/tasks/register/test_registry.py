"""Registry versions, the candidate/champion promotion gate, model cards, model URIs and
`mlflow models serve` on a registered version."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from model.launch import free_port
from tasks.common import tracking
from tasks.config import RegisterConfig
from tasks.register.promotion import decide
from tasks.register.registry import register_version
from tasks.register.resolve import resolve_model

from .conftest import embedded_config


def test_gate_needs_every_metric_to_beat_the_champion_by_the_margin() -> None:
    settings = RegisterConfig(promote_metrics=["val_bpb", "mc_acc"], promote_margin=0.05)
    champion = {"lmforge.eval.val_bpb": "2.0", "lmforge.eval.mc_acc": "0.5"}
    better = decide(settings, {"val_bpb": 1.8, "mc_acc": 0.6}, champion, 3)
    assert better.promote and better.champion == {"val_bpb": 2.0, "mc_acc": 0.5}
    within_margin = decide(settings, {"val_bpb": 1.95, "mc_acc": 0.6}, champion, 3)
    assert not within_margin.promote
    assert "val_bpb: 1.9500 vs champion 2.0000" in within_margin.reason
    assert decide(settings, {"val_bpb": 9.0, "mc_acc": 0.1}, None, None).promote
    with pytest.raises(ValueError, match="promote_metrics names \\['mc_acc'\\]"):
        decide(settings, {"val_bpb": 1.0}, champion, 3)


def test_gate_refuses_a_model_whose_training_run_ended_unhealthy(
    tiny_model: Path, tmp_path: Path
) -> None:
    config = embedded_config(tmp_path)
    decided = {}
    for health, bpb in (("healthy", 2.0), ("unhealthy", 1.0), ("recovered", 1.5)):
        run_id = tracking.start_run(config, "train-test", {"lmforge.train.health": health})
        out = tmp_path / f"out-{health}"
        out.mkdir()
        metrics = {"val_bpb": bpb}
        registered = register_version(
            config, "guarded", tiny_model, run_id, {}, metrics, lambda d: "# card\n", out
        )
        decided[health] = registered
    refused = decided["unhealthy"]["promotion"]
    assert refused["decision"] == "not promoted"
    assert "the training run ended unhealthy" in refused["reason"]
    assert decided["unhealthy"]["aliases"] == ["candidate"]  # registered, never champion
    assert decided["recovered"]["aliases"] == ["candidate", "champion"]  # 1.5 beats 2.0


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path):
    """Three versions of one model: the first (bpb 2.0), a worse one (1.99), a better (1.5)."""
    work_dir = tmp_path_factory.mktemp("registry")
    config = embedded_config(work_dir, "register.promote_margin=0.01")
    versions = []
    for bpb in (2.0, 1.99, 1.5):
        run_id = tracking.start_run(config, "train-test", {"lmforge.fingerprint.train": "abc"})
        out = work_dir / f"out-{run_id}"
        out.mkdir()
        versions.append(
            register_version(
                config,
                config.tracking.model_name,
                tiny_model,
                run_id,
                {},
                {"val_bpb": bpb, "mc_acc": 0.5},
                lambda decision: f"# card\n\n{decision['reason']}\n",
                out,
            )
        )
    return config, versions


def test_versions_aliases_descriptions_and_cards(registry, tiny_model: Path) -> None:
    config, (first, worse, better) = registry
    client, name = MlflowClient(config.mlflow_uri()), config.tracking.model_name
    assert first["aliases"] == ["candidate", "champion"]
    assert worse["aliases"] == ["candidate"] and worse["promotion"]["decision"] == "not promoted"
    assert better["aliases"] == ["candidate", "champion"]
    assert int(client.get_model_version_by_alias(name, "champion").version) == 3
    assert int(client.get_model_version_by_alias(name, "candidate").version) == 3
    second = client.get_model_version(name, "2")
    assert "1.9900 vs champion 2.0000" in second.description
    assert json.loads(second.tags["lmforge.promotion.champion"]) == {"val_bpb": 2.0}
    assert second.tags["lmforge.eval.val_bpb"] == "1.99"
    # every number in one tag and in the description; only the gate's metric one by one
    assert json.loads(second.tags["lmforge.eval"]) == {"mc_acc": 0.5, "val_bpb": 1.99}
    assert "lmforge.eval.mc_acc" not in second.tags
    assert "| mc_acc | 0.5 |" in second.description
    mlflow.set_tracking_uri(config.mlflow_uri())
    card = mlflow.artifacts.download_artifacts(f"models:/{name}/2/artifacts/model_card.md")
    assert "1.9900 vs champion" in Path(card).read_text()
    # the same model as a Hugging Face folder travels with every version (model/hf.py)
    hf = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/2/artifacts/hf"))
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {
        p.name for p in hf.iterdir()
    }
    assert json.loads((hf / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]
    # a gate metric the evaluation lacks stops before anything is registered
    bad = embedded_config(Path(config.run.work_dir), "register.promote_metrics=['cloze_acc']")
    with pytest.raises(ValueError, match="cloze_acc"):
        register_version(bad, name, tiny_model, first["run_id"], {}, {"val_bpb": 1.0}, str, None)
    assert len(client.search_model_versions(f"name='{name}'")) == 3


def test_model_uris_resolve_or_fail_clearly(registry, tiny_model: Path, tmp_path: Path) -> None:
    config, _ = registry
    name = config.tracking.model_name
    resolved = resolve_model(config, f"models:/{name}@champion")
    assert resolved.version == 3 and (resolved.model_dir / "model.safetensors").is_file()
    assert resolve_model(config, str(tiny_model)).model_dir == tiny_model
    with pytest.raises(ValueError, match="no registered model 'nope'"):
        resolve_model(config, "models:/nope@champion")
    with pytest.raises(ValueError, match="has no alias 'gold'"):
        resolve_model(config, f"models:/{name}@gold")
    with pytest.raises(ValueError, match="unknown model URI"):
        resolve_model(config, "models:/a/b/c")
    with pytest.raises(ValueError, match="neither a models:/ URI nor an existing folder"):
        resolve_model(config, str(tmp_path / "missing"))


def test_mlflow_models_serve_answers_a_prompt(registry) -> None:
    config, _ = registry
    port = free_port()
    bin_dir = str(Path(sys.executable).parent)  # the server execs `uvicorn` from PATH
    env = {**os.environ, "MLFLOW_TRACKING_URI": config.mlflow_uri()}
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    command = [f"{bin_dir}/mlflow", "models", "serve", "--env-manager", "local"]
    command += ["-m", f"models:/{config.tracking.model_name}@champion"]
    command += ["-h", "127.0.0.1", "-p", str(port)]
    server = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 300  # its start imports mlflow, torch, the model
        body = {"dataframe_records": [{"prompt": "The parser"}], "params": {"max_new_tokens": 5}}
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        while True:
            assert server.poll() is None, "mlflow models serve exited"
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    answer = json.loads(response.read())
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not answer in 300 s"
                time.sleep(0.5)
        (completion,) = answer["predictions"]
        assert isinstance(completion, str) and completion
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # no server left behind
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
