"""Evaluate step logic: score a model, write the report (JSON + Markdown), log it to MLflow."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from model.evaluate import EvalSets, evaluate_model
from tasks.common import tracking
from tasks.common.step import StepResult
from tasks.config import EvalConfig, LmforgeConfig
from tasks.evaluate.harness import (
    HarnessData,
    check_harness_run,
    flat_metrics,
    harness_scores,
    harness_table,
)
from tasks.register.resolve import resolve_model


def eval_sets(settings: EvalConfig) -> EvalSets:
    """The evaluation sets the `evaluate` settings switch on."""
    return EvalSets(
        bleu_docs=settings.bleu_docs,
        prompt_tokens=settings.prompt_tokens,
        reference_tokens=settings.reference_tokens,
        cloze_docs=settings.cloze_docs,
        texts=[Path(t) for t in settings.texts],
        choices=Path(settings.choices) if settings.choices else None,
        sft=Path(settings.sft) if settings.sft else None,
        sft_max_new_tokens=settings.sft_max_new_tokens,
    )


def report_markdown(title: str, result: dict[str, Any]) -> str:
    """The evaluation as Markdown: a metric table, then the samples."""
    lines = [f"# Evaluation of {title}\n", "| metric | value |", "|---|---|"]
    for name, value in sorted(result["metrics"].items()):
        lines.append(
            f"| {name} | {value:.4f} |" if isinstance(value, float) else f"| {name} | {value} |"
        )
    if "harness" in result:
        lines += harness_table(result["harness"])
    lines.append("\n## Samples\n")
    for i, sample in enumerate(result["samples"], 1):
        lines.append(f"{i}. prompt: `{sample['prompt']}`\n\n```\n{sample['completion']}\n```\n")
    return "\n".join(lines)


def write_report(out_dir: Path, title: str, result: dict[str, Any]) -> list[Path]:
    """eval.json and report.md in `out_dir`, each written aside and renamed into place."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in [
        ("eval.json", json.dumps(result, indent=2)),
        ("report.md", report_markdown(title, result)),
    ]:
        tmp = out_dir / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, out_dir / name)
        written.append(out_dir / name)
    return written


def log_evaluation(config: LmforgeConfig, run_id: str, result: dict, files: list[Path]) -> None:
    """Every metric as `eval_<name>` on the model's run (lm-eval's as `harness.<task>.<metric>`),
    the report files as artifacts."""
    from mlflow import MlflowClient

    metrics = {f"eval_{k}": v for k, v in result["metrics"].items()}
    if "val_perplexity" in result["metrics"]:
        metrics["eval_perplexity"] = result["metrics"]["val_perplexity"]
    if "harness" in result:
        metrics |= flat_metrics(result["harness"])
    tracking.log_metrics(config, run_id, metrics)
    client = MlflowClient(config.mlflow_uri())
    for path in files:
        client.log_artifact(run_id, str(path), artifact_path="evaluation")


def run_evaluation(
    config: LmforgeConfig, model_dir: Path, data_dir: Path | None, sets: EvalSets
) -> dict[str, Any]:
    """`evaluate_model` with the `evaluate` settings of `config`."""
    settings = config.evaluate
    return evaluate_model(
        model_dir,
        data_dir,
        max_batches=settings.max_batches,
        prompts=settings.prompts,
        max_new_tokens=settings.max_new_tokens,
        temperature=settings.temperature,
        top_k=settings.top_k,
        seed=settings.seed,
        sets=sets,
    )


def evaluate_trained(
    config: LmforgeConfig, trained: StepResult, tokens: StepResult, out_dir: Path
) -> dict[str, Any]:
    """Evaluate the exported model of `trained` on the validation shards of `tokens`."""
    result = run_evaluation(
        config, Path(trained.path) / "model", Path(tokens.path), eval_sets(config.evaluate)
    )
    files = write_report(out_dir, f"the model trained in {trained.path}", result)
    run_id = json.loads((Path(trained.path) / "mlflow_run.json").read_text())["run_id"]
    log_evaluation(config, run_id, result, files)
    return {**result, "mlflow_run_id": run_id}


def evaluate_uri(
    config: LmforgeConfig,
    model: str,
    data_dir: str | None,
    out_dir: Path,
    harness: list[str] | None = None,
) -> dict[str, Any]:
    """Evaluate a registered model (models:/...) or model folder, with lm-evaluation-harness
    on the `harness` tasks too (tasks/evaluate/harness.py); log to its run when known."""
    sets = eval_sets(config.evaluate)
    data = HarnessData(sets.choices, sets.texts)
    if harness:
        check_harness_run(harness, data)
    resolved = resolve_model(config, model)
    result = run_evaluation(config, resolved.model_dir, Path(data_dir) if data_dir else None, sets)
    if harness:
        result["harness"] = harness_scores(resolved.model_dir, harness, data)
    files = write_report(out_dir, resolved.label, result)
    if resolved.run_id:
        log_evaluation(config, resolved.run_id, result, files)
    return {**result, "mlflow_run_id": resolved.run_id, "report": [str(f) for f in files]}
