"""Evaluate step logic: held-out loss, perplexity and samples, written to disk and to MLflow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from model.evaluate import evaluate_model
from tasks.common import tracking
from tasks.common.step import StepResult
from tasks.config import LmforgeConfig


def samples_markdown(samples: list[dict[str, str]]) -> str:
    """The sample generations as a small Markdown document."""
    parts = ["# Samples\n"]
    for i, sample in enumerate(samples, 1):
        parts.append(f"## {i}. prompt: `{sample['prompt']}`\n\n```\n{sample['completion']}\n```\n")
    return "\n".join(parts)


def evaluate_trained(
    config: LmforgeConfig, trained: StepResult, tokens: StepResult, out_dir: Path
) -> dict[str, Any]:
    """Evaluate the exported model of `trained` on the validation shards of `tokens`."""
    settings = config.evaluate
    result = evaluate_model(
        Path(trained.path) / "model",
        Path(tokens.path),
        max_batches=settings.max_batches,
        prompts=settings.prompts,
        max_new_tokens=settings.max_new_tokens,
        temperature=settings.temperature,
        top_k=settings.top_k,
        seed=settings.seed,
    )
    (out_dir / "eval.json").write_text(json.dumps(result, indent=2))
    (out_dir / "samples.md").write_text(samples_markdown(result["samples"]))
    run_id = json.loads((Path(trained.path) / "mlflow_run.json").read_text())["run_id"]
    metrics = {"eval_val_loss": result["val_loss"], "eval_perplexity": result["perplexity"]}
    tracking.log_metrics(config, run_id, metrics)
    from mlflow import MlflowClient

    client = MlflowClient(config.mlflow_uri())
    client.log_artifact(run_id, str(out_dir / "eval.json"), artifact_path="evaluation")
    client.log_artifact(run_id, str(out_dir / "samples.md"), artifact_path="evaluation")
    return {**result, "mlflow_run_id": run_id}
